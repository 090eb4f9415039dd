#include "attention/masked/masked_reference.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/check.h"

namespace hotswap::masked {
namespace {

double dot_double(const float* a, const float* b, int n) {
  double s = 0.0;
  for (int i = 0; i < n; ++i) s += static_cast<double>(a[i]) * static_cast<double>(b[i]);
  return s;
}

// softmax(logits) . V over `keys` (all of 0..t when keys is null) for one head.
void attend(const float* q, const PagedKvView& kv, int kv_head, double scale, int t,
            const std::vector<int32_t>* keys, const std::vector<float>* weights, float* out) {
  const int d = kv.head_dim;
  const size_t n = keys ? keys->size() : static_cast<size_t>(t) + 1;
  std::vector<double> logits(n);
  std::vector<float> row(static_cast<size_t>(d));  // a bf16 row widened
  double row_max = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < n; ++i) {
    const int j = keys ? (*keys)[i] : static_cast<int>(i);
    HS_CHECK(j >= 0 && j <= t) << "selected key " << j << " outside [0, " << t << "]";
    double l = scale * dot_double(q, kv.key_row(j, kv_head, row.data()), d);
    if (weights) l -= std::log(static_cast<double>((*weights)[i]) + 1e-6);
    logits[i] = l;
    row_max = std::max(row_max, l);
  }
  std::vector<double> acc(static_cast<size_t>(d), 0.0);
  double den = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const int j = keys ? (*keys)[i] : static_cast<int>(i);
    const double p = std::exp(logits[i] - row_max);
    den += p;
    const float* v = kv.value_row(j, kv_head, row.data());
    for (int c = 0; c < d; ++c) acc[c] += p * static_cast<double>(v[c]);
  }
  for (int c = 0; c < d; ++c) out[c] = static_cast<float>(acc[c] / den);
}

}  // namespace

void masked_attention_reference(const float* q, int num_heads, const PagedKvView& kv, const QueryContext& ctx,
                                const std::vector<HeadSelection>& sel, float* out) {
  HS_CHECK(num_heads % kv.num_kv_heads == 0 && sel.size() == static_cast<size_t>(num_heads));
  const int group = num_heads / kv.num_kv_heads;
  const int d = kv.head_dim;
  for (int h = 0; h < num_heads; ++h) {
    const HeadSelection& s = sel[h];
    const float* qh = q + static_cast<size_t>(h) * d;
    float* oh = out + static_cast<size_t>(h) * d;
    if (s.dense) {
      attend(qh, kv, h / group, ctx.scale, ctx.position, nullptr, nullptr, oh);
    } else {
      HS_CHECK(!s.keys.empty() && s.keys.size() == s.weights.size()) << "head " << h;
      attend(qh, kv, h / group, ctx.scale, ctx.position, &s.keys, &s.weights, oh);
    }
  }
}

void dense_attention_reference(const float* q, int num_heads, const PagedKvView& kv, const QueryContext& ctx,
                               float* out) {
  HS_CHECK(num_heads % kv.num_kv_heads == 0);
  const int group = num_heads / kv.num_kv_heads;
  const int d = kv.head_dim;
  for (int h = 0; h < num_heads; ++h)
    attend(q + static_cast<size_t>(h) * d, kv, h / group, ctx.scale, ctx.position, nullptr, nullptr,
           out + static_cast<size_t>(h) * d);
}

double selection_density(const std::vector<HeadSelection>& sel, int position) {
  if (sel.empty()) return 0.0;
  double sum = 0.0;
  for (const HeadSelection& s : sel)
    sum += s.dense ? 1.0 : static_cast<double>(s.keys.size()) / (static_cast<double>(position) + 1.0);
  return sum / static_cast<double>(sel.size());
}

double relative_l2_error(const float* dense, const float* approx, size_t n) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double diff = static_cast<double>(dense[i]) - static_cast<double>(approx[i]);
    num += diff * diff;
    den += static_cast<double>(dense[i]) * static_cast<double>(dense[i]);
  }
  if (den == 0.0) return num == 0.0 ? 0.0 : std::numeric_limits<double>::infinity();
  return std::sqrt(num / den);
}

}  // namespace hotswap::masked
