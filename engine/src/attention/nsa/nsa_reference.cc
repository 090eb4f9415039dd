#include "attention/nsa/nsa_reference.h"

#include <algorithm>
#include <cmath>

#include "attention/nsa/nsa_compress.h"
#include "attention/nsa/nsa_math.h"
#include "attention/nsa/nsa_select.h"
#include "core/check.h"

namespace hotswap {
namespace {

using nsa_detail::dot;
using nsa_detail::dot_sequential;
using nsa_detail::softmax_inplace;

// softmax(scores) · values over `keys.size()` rows; out[d] (zeros when there is no key).
void softmax_attend(std::vector<float> scores, const std::vector<const float*>& values, int d, float* out) {
  std::fill_n(out, d, 0.0f);
  if (scores.empty()) return;
  softmax_inplace(scores.data(), static_cast<int>(scores.size()));
  for (size_t r = 0; r < scores.size(); ++r) {
    for (int c = 0; c < d; ++c) out[c] += scores[r] * values[r][c];
  }
}

}  // namespace

void nsa_attention_reference(const NsaReferenceInputs& in, const NsaAdapter& adapter, int layer, float* out,
                             NsaReferenceTrace* trace) {
  const NsaConfig& c = adapter.config;
  const NsaLayerWeights& w = adapter.layers[static_cast<size_t>(layer)];
  const int T = in.num_tokens, H = in.num_heads, hkv = in.num_kv_heads, d = in.head_dim, D = in.hidden_size;
  const int G = H / hkv, M = c.num_mem_tokens, l = c.compress_block_size;
  HS_CHECK(H == adapter.num_heads && hkv == adapter.num_kv_heads && d == adapter.head_dim && D == adapter.hidden_size)
      << "reference inputs do not match the adapter's model shape";
  const bool pre = c.compress_rope == NsaCompressRope::kPre;
  const float* kc_src = pre ? in.k_unrotated : in.k;
  const float* qc_src = pre ? in.q_unrotated : in.q;
  auto row = [](const float* base, int64_t pos, int heads, int head, int dim) {
    return base + (pos * heads + head) * dim;
  };

  // Every compressed block of the sequence, from the raw keys and values.
  const int64_t nb = c.num_compressed_blocks(T);
  std::vector<float> ck(static_cast<size_t>(nb * hkv * d)), cv(ck.size());
  for (int h = 0; h < hkv; ++h) {
    for (int side = 0; side < 2; ++side) {
      const NsaCompressor& comp = side == 0 ? w.k : w.v;
      std::vector<float> x(static_cast<size_t>(std::max<int64_t>(nb, 1) * l * d));
      std::vector<const float*> rows(static_cast<size_t>(l));
      for (int64_t j = 0; j < nb; ++j) {
        for (int i = 0; i < l; ++i) {
          rows[static_cast<size_t>(i)] = row(side == 0 ? kc_src : in.v, j * c.compress_stride + i, hkv, h, d);
        }
        nsa_detail::add_position_embedding(rows.data(), comp.pos_emb.data() + static_cast<int64_t>(h) * l * d, l, d,
                                           x.data() + j * l * d);
      }
      std::vector<float> hidden(static_cast<size_t>(std::max<long>(1, nsa_detail::compress_scratch_floats(
                                                                          static_cast<int>(nb), c.mlp_hidden_size))));
      std::vector<float> o(static_cast<size_t>(std::max<int64_t>(nb, 1) * d));
      nsa_detail::compress_blocks(comp, h, l, d, c.mlp_hidden_size, x.data(), static_cast<int>(nb), hidden.data(),
                                  o.data());
      std::vector<float>& dst = side == 0 ? ck : cv;
      for (int64_t j = 0; j < nb; ++j) std::copy_n(&o[j * d], d, &dst[(j * hkv + h) * d]);
    }
  }
  if (trace) {
    trace->selected.assign(static_cast<size_t>(T) * hkv, {});
    trace->gates.assign(static_cast<size_t>(T) * H * 3, 0.0f);
    trace->branches.assign(static_cast<size_t>(T) * H * 3 * d, 0.0f);
    trace->compressed_keys = ck;
    trace->compressed_values = cv;
  }

  std::vector<float> o_branch(static_cast<size_t>(3) * d);
  for (int64_t t = 0; t < T; ++t) {
    const int64_t nc = c.num_compressed_blocks(t + 1);  // blocks with j*s + l - 1 <= t
    const int64_t nsel = c.num_selection_blocks(t);
    for (int g = 0; g < hkv; ++g) {
      // Importance probabilities of each head of the group, then the group's selection.
      std::vector<float> p(static_cast<size_t>(std::max<int64_t>(1, G * nc)));
      for (int a = 0; a < G; ++a) {
        const float* q = row(qc_src, t, H, g * G + a, d);
        for (int64_t j = 0; j < nc; ++j) p[a * nc + j] = dot_sequential(q, &ck[(j * hkv + g) * d], d) * in.scale;
        if (nc > 0) softmax_inplace(&p[a * nc], static_cast<int>(nc));
      }
      std::vector<float> head_imp(static_cast<size_t>(nsel)), imp(static_cast<size_t>(nsel));
      nsa_detail::group_importance(p.data(), G, nc, nc, c, nsel, head_imp.data(), imp.data());
      std::vector<int32_t> scratch(static_cast<size_t>(nsel)), blocks(static_cast<size_t>(nsel));
      blocks.resize(static_cast<size_t>(nsa_detail::select_blocks(imp.data(), t, c, scratch.data(), blocks.data())));
      if (trace) trace->selected[static_cast<size_t>(t * hkv + g)] = blocks;

      // Keys each branch sees (the same for every head of the group).
      std::vector<int64_t> sel_keys, win_keys;
      for (int32_t b : blocks) {
        for (int64_t pos = b * static_cast<int64_t>(c.selection_block_size);
             pos < (b + 1) * static_cast<int64_t>(c.selection_block_size) && pos <= t; ++pos) {
          sel_keys.push_back(pos);
        }
      }
      for (int64_t pos = std::max<int64_t>(0, t - c.sliding_window_size + 1); pos <= t; ++pos) win_keys.push_back(pos);

      for (int a = 0; a < G; ++a) {
        const int qh = g * G + a;
        // Compressed branch: memory tokens, then the existing blocks.
        const float* qc = row(qc_src, t, H, qh, d);
        std::vector<float> scores;
        std::vector<const float*> values;
        for (int m = 0; m < M; ++m) {
          scores.push_back(dot(qc, adapter.mem_keys(layer, g) + static_cast<int64_t>(m) * d, d) * in.scale);
          values.push_back(adapter.mem_values(layer, g) + static_cast<int64_t>(m) * d);
        }
        for (int64_t j = 0; j < nc; ++j) {
          scores.push_back(dot_sequential(qc, &ck[(j * hkv + g) * d], d) * in.scale);
          values.push_back(&cv[(j * hkv + g) * d]);
        }
        softmax_attend(scores, values, d, &o_branch[0]);
        // Selected and sliding branches, rotated query and keys.
        const float* q = row(in.q, t, H, qh, d);
        for (int branch = 1; branch <= 2; ++branch) {
          scores.clear();
          values.clear();
          for (int64_t pos : branch == 1 ? sel_keys : win_keys) {
            scores.push_back(dot(q, row(in.k, pos, hkv, g, d), d) * in.scale);
            values.push_back(row(in.v, pos, hkv, g, d));
          }
          softmax_attend(scores, values, d, &o_branch[static_cast<size_t>(branch) * d]);
        }
        // Gate.
        float gate[3];
        for (int b = 0; b < 3; ++b) {
          const int64_t r = 3 * static_cast<int64_t>(qh) + b;
          const float z = dot(w.gate_w.data() + r * D, in.x + t * D, D) + w.gate_b[static_cast<size_t>(r)];
          gate[b] = 1.0f / (1.0f + std::exp(-z));
        }
        float* o = out + (t * H + qh) * d;
        for (int k = 0; k < d; ++k) o[k] = gate[0] * o_branch[k] + gate[1] * o_branch[d + k] + gate[2] * o_branch[2 * d + k];
        if (trace) {
          std::copy_n(gate, 3, &trace->gates[static_cast<size_t>((t * H + qh) * 3)]);
          std::copy_n(o_branch.data(), 3 * d, &trace->branches[static_cast<size_t>((t * H + qh) * 3 * d)]);
        }
      }
    }
  }
}

}  // namespace hotswap
