// The reference kernel: for each query, every visible key's score is materialised, softmaxed
// and applied in double precision, one branch at a time. Slow and obviously correct; the
// fast kernel is held to it.
#include <algorithm>
#include <cmath>
#include <vector>

#include "attention/layer_attention.h"
#include "attention/paged/paged_pattern.h"
#include "core/check.h"

namespace hotswap {
namespace {

enum class Branch { kDense, kStreaming };

// out[x] = sum_p softmax(q . k_p * scale)_p v_p[x] over the keys the branch lets query t see.
void reference_branch(const LayerAttentionCall& c, const float* q, int t, int kv_head, Branch branch,
                      const StreamingRule& rule, std::vector<double>& scores, std::vector<double>& out) {
  const int d = c.head_dim;
  scores.assign(static_cast<size_t>(t) + 1, 0.0);
  std::vector<float> key_buf(static_cast<size_t>(d));  // a bf16 row widened
  double max_score = -INFINITY;
  for (int p = 0; p <= t; ++p) {
    if (branch == Branch::kStreaming && !rule.visible(p, t)) continue;
    const float* k = c.kv.key_row(p, kv_head, key_buf.data());
    double s = 0;
    for (int x = 0; x < d; ++x) s += static_cast<double>(q[x]) * k[x];
    scores[p] = s * c.scale;
    max_score = std::max(max_score, scores[p]);
  }
  double sum = 0;
  for (int p = 0; p <= t; ++p) {
    if (branch == Branch::kStreaming && !rule.visible(p, t)) {
      scores[p] = 0;
      continue;
    }
    sum += (scores[p] = std::exp(scores[p] - max_score));
  }
  out.assign(static_cast<size_t>(d), 0.0);
  std::vector<float> row(static_cast<size_t>(d));
  for (int p = 0; p <= t; ++p) {
    if (scores[p] == 0) continue;
    const double w = scores[p] / sum;
    const float* v = c.kv.value_row(p, kv_head, row.data());
    for (int x = 0; x < d; ++x) out[x] += w * v[x];
  }
}

void reference(const LayerAttentionCall& c, bool dense_only) {
  HS_CHECK(c.num_kv_heads > 0 && c.num_heads % c.num_kv_heads == 0) << "H " << c.num_heads << " Hkv " << c.num_kv_heads;
  const int group = c.num_heads / c.num_kv_heads;
  const int d = c.head_dim;
  const PagedPattern& pattern = paged_pattern(c);
  const PagedKind kind = dense_only ? PagedKind::kEager : pattern.kind;
  const StreamingRule rule = pattern.rule;
  std::vector<double> scores, dense, streaming;
  for (int i = 0; i < c.num_tokens; ++i) {
    const int t = c.first_position + i;
    for (int h = 0; h < c.num_heads; ++h) {
      const int kvh = h / group;
      const float* q = c.q + (static_cast<size_t>(i) * c.num_heads + h) * d;
      float* out = c.out + (static_cast<size_t>(i) * c.num_heads + h) * d;
      if (kind == PagedKind::kEager) {
        reference_branch(c, q, t, kvh, Branch::kDense, rule, scores, dense);
        for (int x = 0; x < d; ++x) out[x] = static_cast<float>(dense[x]);
      } else if (kind == PagedKind::kStreaming) {
        reference_branch(c, q, t, kvh, Branch::kStreaming, rule, scores, streaming);
        for (int x = 0; x < d; ++x) out[x] = static_cast<float>(streaming[x]);
      } else {
        HS_CHECK(kind == PagedKind::kMixed && pattern.gates) << "reference kernel: unsupported pattern";
        const double a = pattern.gates->gate(c.layer, h);
        // A branch of weight 0 is skipped (specs/attention.md allows it): with per-KV-head
        // release a streaming head's dense keys may be gone. Its term was 0 * a finite value.
        dense.assign(static_cast<size_t>(d), 0.0);
        streaming.assign(static_cast<size_t>(d), 0.0);
        if (a != 0.0) reference_branch(c, q, t, kvh, Branch::kDense, rule, scores, dense);
        if (a != 1.0) reference_branch(c, q, t, kvh, Branch::kStreaming, rule, scores, streaming);
        for (int x = 0; x < d; ++x) out[x] = static_cast<float>(a * dense[x] + (1.0 - a) * streaming[x]);
      }
    }
  }
}

}  // namespace

void attention_reference(const LayerAttentionCall& call) { reference(call, /*dense_only=*/false); }

void eager_attention_reference(const LayerAttentionCall& call) { reference(call, /*dense_only=*/true); }

}  // namespace hotswap
