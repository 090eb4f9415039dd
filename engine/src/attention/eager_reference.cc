#include <algorithm>
#include <cmath>
#include <vector>

#include "attention/layer_attention.h"

namespace hotswap {

void eager_attention_reference(const LayerAttentionCall& c) {
  const int group = c.num_heads / c.num_kv_heads;
  const int d = c.head_dim;
  std::vector<float> scores;
  for (int i = 0; i < c.num_tokens; ++i) {
    const int t = c.first_position + i;
    scores.resize(static_cast<size_t>(t) + 1);
    for (int h = 0; h < c.num_heads; ++h) {
      const int kvh = h / group;
      const float* q = c.q + (static_cast<size_t>(i) * c.num_heads + h) * d;
      float max_score = -INFINITY;
      for (int p = 0; p <= t; ++p) {
        const float* k = c.kv.key(p, kvh);
        float s = 0;
        for (int x = 0; x < d; ++x) s += q[x] * k[x];
        scores[p] = s * c.scale;
        max_score = std::max(max_score, scores[p]);
      }
      float sum = 0;
      for (int p = 0; p <= t; ++p) sum += (scores[p] = std::exp(scores[p] - max_score));
      float* out = c.out + (static_cast<size_t>(i) * c.num_heads + h) * d;
      std::fill(out, out + d, 0.0f);
      for (int p = 0; p <= t; ++p) {
        const float w = scores[p] / sum;
        const float* v = c.kv.value(p, kvh);
        for (int x = 0; x < d; ++x) out[x] += w * v[x];
      }
    }
  }
}

void attend(const LayerAttentionCall& call) { eager_attention_reference(call); }

}  // namespace hotswap
