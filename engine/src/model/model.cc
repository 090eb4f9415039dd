#include "model/model.h"

#include <algorithm>
#include <cmath>

#include "attention/attention_backend.h"
#include "attention/attention_step.h"
#include "attention/layer_attention.h"
#include "core/check.h"
#include "kernels/add_inplace.h"
#include "kernels/embedding.h"
#include "kernels/isa.h"
#include "kernels/linear.h"
#include "kernels/rms_norm.h"
#include "kernels/silu_mul.h"
#include "model/layer_regions.h"

namespace hotswap {
namespace {

// Up to this much attention work per layer (QK^T multiply-adds), a decode-sized step runs all
// layers in one parallel region with the attention on one thread (model/layer_regions.h): a
// few microseconds of attention, less than the two fork/joins it saves. SmolLM2-135M: ~900
// keys; Llama-3.2-1B: ~250.
constexpr int64_t kMaxSingleThreadAttentionMacs = int64_t{1} << 19;

void ensure(std::vector<float>& buf, size_t n) {
  if (buf.size() < n) buf.resize(n);
}

std::vector<float> to_f32(const TensorView& t) {
  std::vector<float> out(static_cast<size_t>(t.empty() ? 0 : t.numel()));
  for (size_t i = 0; i < out.size(); ++i) out[i] = t.at(static_cast<int64_t>(i));
  return out;
}

const float* bias_or_null(const std::vector<float>& bias) {
  return bias.empty() ? nullptr : bias.data();
}

// W as stored; its q8 / q4 form when the model was loaded with WeightFormat::kQ8 / kQ4; its
// AMX-packed form when it has one and the kernels multiply bf16 products with AMX.
void project(const LayerProjection& p, const kernels::Q8Matrix* q8, const float* x, int64_t rows, float* y) {
  if (q8 != nullptr) return kernels::linear_q8(x, rows, *q8, p.bias, y);
  if (const kernels::Bf16Packed* packed = p.packed_in_use())
    return kernels::linear_bf16_packed(x, rows, *packed, p.bias, y);
  kernels::linear(x, rows, *p.w, p.bias, y);
}

}  // namespace

std::unique_ptr<Model> Model::load(const std::string& model_dir, const ModelLoadOptions& options) {
  return std::unique_ptr<Model>(new Model(model_dir, load_model_config(model_dir), options));
}

Model::Model(std::string dir, ModelConfig config, const ModelLoadOptions& options)
    : dir_(std::move(dir)), config_(std::move(config)), weights_(dir_, config_), rope_(config_) {
  for (const LayerWeights& w : weights_.layers)
    biases_.push_back({to_f32(w.q_bias), to_f32(w.k_bias), to_f32(w.v_bias), to_f32(w.o_bias), to_f32(w.gate_bias),
                       to_f32(w.up_bias), to_f32(w.down_bias)});
  if (options.weights != WeightFormat::kAuto) {
    const auto format = options.weights == WeightFormat::kQ4 ? kernels::QuantFormat::kQ4 : kernels::QuantFormat::kQ8;
    quantized_ = QuantizedWeights::load(dir_, weights_, format, options.cache);
  } else if (kernels::amx_enabled() && bf16_products(options.matmul_precision, weights_.dominant_dtype())) {
    packed_ = PackedBf16Weights::pack(weights_);
  }
}

KvLayout Model::kv_layout(int block_size, int64_t num_blocks, KvDtype dtype) const {
  KvLayout l;
  l.num_layers = config_.num_layers;
  l.num_kv_heads = config_.num_kv_heads;
  l.head_dim = config_.head_dim;
  l.block_size = block_size;
  l.num_blocks = num_blocks;
  l.dtype = dtype;
  return l;
}

Logits Model::forward(const ForwardBatch& batch, KvStorage& kv, Workspace& ws) const {
  const ModelConfig& c = config_;
  const int64_t D = c.hidden_size, I = c.intermediate_size, d = c.head_dim;
  const int64_t H = c.num_heads, Hkv = c.num_kv_heads;
  const int half_rot = rope_.rotary_dim() / 2;
  const KvLayout& layout = kv.layout();

  // Flatten the batch: token t of the step belongs to chunk chunk_of[t] at position pos[t].
  int64_t T = 0, attention_macs = 0;  // QK^T of every token over its context, a layer
  for (const auto& ch : batch.chunks) {
    const int64_t n = static_cast<int64_t>(ch.tokens.size());
    T += n;
    attention_macs += n * (ch.first_position + n) * H * d;
  }
  std::vector<int> position(T);
  std::vector<int> chunk_offset(batch.chunks.size());
  {
    int64_t t = 0;
    for (size_t s = 0; s < batch.chunks.size(); ++s) {
      const auto& ch = batch.chunks[s];
      chunk_offset[s] = static_cast<int>(t);
      HS_CHECK(static_cast<int64_t>(ch.block_table.size()) * layout.block_size >=
               ch.first_position + static_cast<int64_t>(ch.tokens.size()))
          << "block table does not cover the chunk";
      for (size_t i = 0; i < ch.tokens.size(); ++i) position[t++] = ch.first_position + static_cast<int>(i);
    }
  }

  ensure(ws.hidden, T * D);
  ensure(ws.normed, T * D);
  ensure(ws.q, T * H * d);
  ensure(ws.k, T * Hkv * d);
  ensure(ws.v, T * Hkv * d);
  ensure(ws.attn, T * H * d);
  ensure(ws.proj, T * D);
  ensure(ws.gate, T * I);
  ensure(ws.up, T * I);
  ensure(ws.cos, T * half_rot);
  ensure(ws.sin, T * half_rot);

  // Embeddings and the rotary angles of every token (shared by all layers).
  {
    int64_t t = 0;
    for (const auto& ch : batch.chunks) {
      const int seq_len = ch.first_position + static_cast<int>(ch.tokens.size());
      for (int32_t id : ch.tokens) {
        HS_CHECK(id >= 0 && id < c.vocab_size) << "token id " << id << " out of range";
        kernels::embedding_lookup(weights_.embed_tokens, id, &ws.hidden[t * D]);
        rope_.angles(position[t], seq_len, &ws.cos[t * half_rot], &ws.sin[t * half_rot]);
        ++t;
      }
    }
  }

  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  // Each backend of the step plans once; some read the un-rotated q/k and the layer input.
  std::vector<StepChunk> step_chunks;
  for (const auto& ch : batch.chunks)
    step_chunks.push_back(StepChunk{ch.attention, ch.state, ch.first_position, static_cast<int>(ch.tokens.size())});
  const AttentionStep attention(step_chunks);
  const bool keep_unrotated = attention.needs_layer_inputs();
  if (keep_unrotated) {
    ensure(ws.q_unrotated, T * H * d);
    ensure(ws.k_unrotated, T * Hkv * d);
  }
  auto projections = [&](int l) {
    const LayerWeights& w = weights_.layers[l];
    const LayerBiases& b = biases_[l];
    const PackedLayer* pk = packed_ ? &packed_->layers[l] : nullptr;
    const auto packed = [&](const kernels::Bf16Packed PackedLayer::*m) { return pk ? &(pk->*m) : nullptr; };
    return LayerProjections{{&w.q_proj, bias_or_null(b.q), packed(&PackedLayer::q_proj)},
                            {&w.k_proj, bias_or_null(b.k), packed(&PackedLayer::k_proj)},
                            {&w.v_proj, bias_or_null(b.v), packed(&PackedLayer::v_proj)},
                            {&w.o_proj, bias_or_null(b.o), packed(&PackedLayer::o_proj)},
                            {&w.gate_proj, bias_or_null(b.gate), packed(&PackedLayer::gate_proj)},
                            {&w.up_proj, bias_or_null(b.up), packed(&PackedLayer::up_proj)},
                            {&w.down_proj, bias_or_null(b.down), packed(&PackedLayer::down_proj)},
                            &w.input_norm,
                            &w.post_attention_norm,
                            c.rms_norm_eps};
  };
  // RoPE on ws.q / ws.k, their K/V rows into the cache, and layer l's attention into ws.attn.
  auto attend = [&](int l) {
    if (keep_unrotated) {
      std::copy_n(ws.q.data(), T * H * d, ws.q_unrotated.data());
      std::copy_n(ws.k.data(), T * Hkv * d, ws.k_unrotated.data());
    }
    // Rows go in at the cache's dtype (store_kv_row: copied, rounded to bf16 or quantised to q8).
    void* k_base = kv.key_data(l);
    void* v_base = kv.value_data(l);
    const size_t row_units = layout.row_units();
    {
      int64_t t = 0;
      for (const auto& ch : batch.chunks) {
        for (size_t i = 0; i < ch.tokens.size(); ++i, ++t) {
          const float* cs = &ws.cos[t * half_rot];
          const float* sn = &ws.sin[t * half_rot];
          RotaryEmbedding::apply(&ws.q[t * H * d], static_cast<int>(H), static_cast<int>(d), rope_.rotary_dim(), cs, sn);
          RotaryEmbedding::apply(&ws.k[t * Hkv * d], static_cast<int>(Hkv), static_cast<int>(d), rope_.rotary_dim(), cs,
                                 sn);
          const int p = position[t];
          const int32_t block = ch.block_table[p / layout.block_size];
          HS_CHECK(block >= 0) << "writing position " << p << " into a released block";
          for (int64_t h = 0; h < Hkv; ++h) {
            const size_t off =
                ((static_cast<size_t>(block) * Hkv + h) * layout.block_size + p % layout.block_size) * row_units;
            store_kv_row(layout.dtype, &ws.k[(t * Hkv + h) * d], static_cast<int>(d), k_base, off);
            store_kv_row(layout.dtype, &ws.v[(t * Hkv + h) * d], static_cast<int>(d), v_base, off);
          }
        }
      }
    }
    // One call per sequence, run together so the kernel parallelises across sequences.
    std::vector<LayerAttentionCall> calls;
    calls.reserve(batch.chunks.size());
    for (size_t s = 0; s < batch.chunks.size(); ++s) {
      const auto& ch = batch.chunks[s];
      if (ch.tokens.empty()) continue;
      LayerAttentionCall call;
      call.layer = l;
      call.q = &ws.q[static_cast<size_t>(chunk_offset[s]) * H * d];
      call.num_tokens = static_cast<int>(ch.tokens.size());
      call.first_position = ch.first_position;
      call.num_heads = static_cast<int>(H);
      call.num_kv_heads = static_cast<int>(Hkv);
      call.head_dim = static_cast<int>(d);
      call.scale = scale;
      call.kv = kv.view(l, ch.block_table, ch.lane_pages);
      call.seq = ch.attention;
      call.state = ch.state;
      call.out = &ws.attn[static_cast<size_t>(chunk_offset[s]) * H * d];
      if (keep_unrotated) {
        const size_t t0 = static_cast<size_t>(chunk_offset[s]);
        call.inputs = LayerInputs{&ws.q_unrotated[t0 * H * d], &ws.k_unrotated[t0 * Hkv * d], &ws.normed[t0 * D],
                                  static_cast<int>(D)};
      }
      if (ch.state != nullptr) ch.state->on_keys_written(l, ch.first_position, call.num_tokens);
      calls.push_back(call);
    }
    attention.attend(calls);
  };

  auto run_layer = [&](int l) {
    const QuantizedLayer* q8 = quantized_ ? &quantized_->layers[l] : nullptr;
    const LayerProjections p = projections(l);
    const bool in_regions = q8 == nullptr && layer_regions_apply(T, p);
    // Attention block.
    if (in_regions) {
      attention_inputs_region(p, T, D, ws);
    } else {
      kernels::rms_norm(ws.hidden.data(), T, D, *p.input_norm, p.eps, ws.normed.data());
      project(p.q, q8 ? &q8->q_proj : nullptr, ws.normed.data(), T, ws.q.data());
      project(p.k, q8 ? &q8->k_proj : nullptr, ws.normed.data(), T, ws.k.data());
      project(p.v, q8 ? &q8->v_proj : nullptr, ws.normed.data(), T, ws.v.data());
    }
    attend(l);
    if (in_regions) {
      attention_output_and_mlp_region(p, T, D, I, ws);
      return;
    }
    project(p.o, q8 ? &q8->o_proj : nullptr, ws.attn.data(), T, ws.proj.data());
    kernels::add_inplace(ws.hidden.data(), ws.proj.data(), T * D);

    // MLP block (SwiGLU).
    kernels::rms_norm(ws.hidden.data(), T, D, *p.post_attention_norm, p.eps, ws.normed.data());
    project(p.gate, q8 ? &q8->gate_proj : nullptr, ws.normed.data(), T, ws.gate.data());
    project(p.up, q8 ? &q8->up_proj : nullptr, ws.normed.data(), T, ws.up.data());
    kernels::silu_mul(ws.gate.data(), ws.up.data(), ws.gate.data(), T * I);
    project(p.down, q8 ? &q8->down_proj : nullptr, ws.gate.data(), T, ws.proj.data());
    kernels::add_inplace(ws.hidden.data(), ws.proj.data(), T * D);
  };

  // Decode-sized steps (model/layer_regions.h): with unquantised weights, every layer in one
  // parallel region when the attention is cheap enough for one thread, else two regions a layer.
  bool regions = quantized_ == nullptr;
  std::vector<LayerProjections> layers;
  for (int l = 0; l < c.num_layers && regions; ++l) {
    layers.push_back(projections(l));
    regions = layer_regions_apply(T, layers.back());
  }
  if (regions && attention_macs <= kMaxSingleThreadAttentionMacs && layer_regions() == LayerRegions::kAuto) {
    all_layers_region(layers, T, D, I, ws, attend);
  } else {
    for (int l = 0; l < c.num_layers; ++l) run_layer(l);
  }

  // Final norm and LM head, only for the rows that want logits.
  Logits out;
  out.vocab_size = c.vocab_size;
  out.first_row.assign(batch.chunks.size(), -1);
  std::vector<int64_t> rows;
  for (size_t s = 0; s < batch.chunks.size(); ++s) {
    const auto& ch = batch.chunks[s];
    const int64_t n = static_cast<int64_t>(ch.tokens.size());
    if (ch.logits == LogitsWanted::kNone || n == 0) continue;
    out.first_row[s] = static_cast<int>(rows.size());
    const int64_t begin = ch.logits == LogitsWanted::kAll ? 0 : n - 1;
    for (int64_t i = begin; i < n; ++i) rows.push_back(chunk_offset[s] + i);
  }
  const int64_t R = static_cast<int64_t>(rows.size());
  if (R == 0) return out;
  for (int64_t r = 0; r < R; ++r) std::copy_n(&ws.hidden[rows[r] * D], D, &ws.proj[r * D]);
  kernels::rms_norm(ws.proj.data(), R, D, weights_.final_norm, c.rms_norm_eps, ws.normed.data());
  out.data.resize(static_cast<size_t>(R) * c.vocab_size);
  const LayerProjection lm_head{&weights_.lm_head, nullptr, packed_ ? &packed_->lm_head : nullptr};
  project(lm_head, quantized_ ? &quantized_->lm_head : nullptr, ws.normed.data(), R, out.data.data());
  return out;
}

bool bf16_products(MatmulPrecision requested, DType dominant) {
  return requested == MatmulPrecision::kBf16 || (requested == MatmulPrecision::kAuto && dominant == DType::kBF16);
}

kernels::LinearPrecision linear_precision_for(MatmulPrecision requested, const Model& model) {
  return bf16_products(requested, model.weights().dominant_dtype()) ? kernels::LinearPrecision::kBf16Dot
                                                                      : kernels::LinearPrecision::kF32;
}

}  // namespace hotswap
