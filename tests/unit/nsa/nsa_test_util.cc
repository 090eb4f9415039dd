#include "nsa_test_util.h"

#include <cstring>
#include <random>

namespace hotswap::testing {
namespace {

void fill(std::vector<float>& v, size_t n, std::mt19937_64& rng, float stddev) {
  std::normal_distribution<float> dist(0.0f, stddev);
  v.resize(n);
  for (float& x : v) x = dist(rng);
}

std::string layer_prefix(int layer) { return "model.layers." + std::to_string(layer) + ".self_attn.nsa."; }

}  // namespace

std::shared_ptr<NsaAdapter> random_nsa_adapter(const ModelShape& shape, const NsaConfig& config, uint64_t seed,
                                               bool with_biases) {
  std::mt19937_64 rng(seed);
  auto a = std::make_shared<NsaAdapter>();
  a->config = config;
  a->num_layers = shape.num_layers;
  a->num_heads = shape.num_heads;
  a->num_kv_heads = shape.num_kv_heads;
  a->head_dim = shape.head_dim;
  a->hidden_size = shape.hidden_size;
  const size_t hkv = static_cast<size_t>(shape.num_kv_heads), d = static_cast<size_t>(shape.head_dim);
  const size_t l = static_cast<size_t>(config.compress_block_size), hidden = static_cast<size_t>(config.mlp_hidden_size);
  a->layers.resize(static_cast<size_t>(shape.num_layers));
  for (NsaLayerWeights& w : a->layers) {
    for (NsaCompressor* side : {&w.k, &w.v}) {
      side->method = side == &w.k ? config.k_compress : config.v_compress;
      fill(side->pos_emb, hkv * l * d, rng, 0.5f);
      if (side->method != NsaCompression::kMlp) continue;
      fill(side->w1, hkv * hidden * l * d, rng, 1.0f / std::sqrt(static_cast<float>(l * d)));
      fill(side->w2, hkv * d * hidden, rng, 1.5f / std::sqrt(static_cast<float>(hidden)));
      if (with_biases) {
        fill(side->b1, hkv * hidden, rng, 0.2f);
        fill(side->b2, hkv * d, rng, 0.2f);
      } else {
        side->b1.assign(hkv * hidden, 0.0f);
        side->b2.assign(hkv * d, 0.0f);
      }
    }
    fill(w.mem_kv, 2 * hkv * static_cast<size_t>(config.num_mem_tokens) * d, rng, 1.0f);
    fill(w.gate_w, 3 * static_cast<size_t>(shape.num_heads) * shape.hidden_size, rng, 0.3f);
    fill(w.gate_b, 3 * static_cast<size_t>(shape.num_heads), rng, 0.5f);
  }
  return a;
}

std::vector<NamedTensor> nsa_tensors(const NsaAdapter& a) {
  std::vector<NamedTensor> out;
  const int64_t hkv = a.num_kv_heads, d = a.head_dim, l = a.config.compress_block_size, hidden = a.config.mlp_hidden_size;
  for (int i = 0; i < a.num_layers; ++i) {
    const NsaLayerWeights& w = a.layers[static_cast<size_t>(i)];
    const std::string p = layer_prefix(i);
    for (int s = 0; s < 2; ++s) {
      const NsaCompressor& c = s == 0 ? w.k : w.v;
      const std::string side = s == 0 ? "k_compress." : "v_compress.";
      out.push_back({p + side + "pos_emb", {hkv, l, d}, c.pos_emb});
      if (c.method != NsaCompression::kMlp) continue;
      for (int64_t h = 0; h < hkv; ++h) {
        const std::string m = p + side + "compress_mlps." + std::to_string(h) + ".";
        auto slice = [](const std::vector<float>& v, int64_t at, int64_t n) {
          return std::vector<float>(v.begin() + at * n, v.begin() + (at + 1) * n);
        };
        out.push_back({m + "0.weight", {hidden, l * d}, slice(c.w1, h, hidden * l * d)});
        out.push_back({m + "0.bias", {hidden}, slice(c.b1, h, hidden)});
        out.push_back({m + "2.weight", {d, hidden}, slice(c.w2, h, d * hidden)});
        out.push_back({m + "2.bias", {d}, slice(c.b2, h, d)});
      }
    }
    out.push_back({p + "compress_mem_kv", {2, hkv, a.config.num_mem_tokens, d}, w.mem_kv});
    out.push_back({p + "strategy_combiner.0.weight", {3 * static_cast<int64_t>(a.num_heads), a.hidden_size}, w.gate_w});
    out.push_back({p + "strategy_combiner.0.bias", {3 * static_cast<int64_t>(a.num_heads)}, w.gate_b});
  }
  return out;
}

nlohmann::ordered_json nsa_config_object(const NsaConfig& c) {
  nlohmann::ordered_json j;
  j["adapter_type"] = "nsa";
  j["compress_block_size"] = c.compress_block_size;
  j["compress_stride"] = c.compress_stride;
  j["selection_block_size"] = c.selection_block_size;
  j["num_selected_blocks"] = c.num_selected_blocks;
  j["sliding_window_size"] = c.sliding_window_size;
  j["k_compress"] = nsa_compression_name(c.k_compress);
  j["v_compress"] = nsa_compression_name(c.v_compress);
  if (c.uses_mlp()) j["mlp_hidden_size"] = c.mlp_hidden_size;
  j["num_mem_tokens"] = c.num_mem_tokens;
  j["compress_rope"] = nsa_compress_rope_name(c.compress_rope);
  return j;
}

nlohmann::ordered_json nsa_json_document(const nlohmann::ordered_json& config, const std::vector<NamedTensor>& tensors) {
  nlohmann::ordered_json doc = config;
  nlohmann::ordered_json dict = nlohmann::ordered_json::object();
  for (const NamedTensor& t : tensors) dict[t.name] = {{"shape", t.shape}, {"data", t.data}};
  doc["adapter_weight_dict"] = std::move(dict);
  return doc;
}

std::string raw_safetensors(const std::string& header_json, const std::string& data) {
  std::string header = header_json;
  while ((8 + header.size()) % 8 != 0) header += ' ';
  const uint64_t n = header.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

std::string nsa_safetensors(const nlohmann::ordered_json* config, const std::vector<NamedTensor>& tensors) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (config) header["__metadata__"] = {{"adapter_config", config->dump()}};
  std::string data;
  for (const NamedTensor& t : tensors) {
    const size_t begin = data.size();
    for (float f : t.data) {
      if (t.dtype == DType::kF32) {
        data.append(reinterpret_cast<const char*>(&f), 4);
      } else {
        const uint16_t h = t.dtype == DType::kF16 ? f32_to_f16(f) : f32_to_bf16(f);
        data.append(reinterpret_cast<const char*>(&h), 2);
      }
    }
    header[t.name] = {{"dtype", std::string(dtype_name(t.dtype))}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
  }
  return raw_safetensors(header.dump(), data);
}

}  // namespace hotswap::testing
