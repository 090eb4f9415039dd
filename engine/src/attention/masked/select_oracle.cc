// Oracle top-k (Part 2 §4.4) and oracle top-p (§4.5) for one query head.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>

#include "attention/masked/select_internal.h"

namespace hotswap::masked::detail {

void apply_oracle_top_k(const MaskerSpec& m, const float* dots, HeadWeights& hw) {
  const int64_t sk = hw.sk;
  const int64_t k = m.size.resolve(sk);  // < sk (not FULL)
  if (k <= 0) return;                    // an empty topk: nothing added, no error (the "new" path)
  // Scores are the unscaled q.k; keys already active score finfo(float32).min, so they are
  // chosen only when fewer than k inactive keys exist (then set to 1.0 like any other choice,
  // as the reference's scatter_ of 1.0 does). Ties go to the lower position (Part 1).
  auto& ranked = hw.s.ranked;
  ranked.resize(static_cast<size_t>(sk));
  for (int64_t j = 0; j < sk; ++j) {
    float score = hw.active(j) ? -FLT_MAX : dots[j];
    if (std::isnan(score)) score = std::numeric_limits<float>::infinity();  // torch.topk ranks NaN highest
    ranked[j] = {score, static_cast<int32_t>(j)};
  }
  auto better = [](const SelectionScratch::Ranked& a, const SelectionScratch::Ranked& b) {
    return a.score > b.score || (a.score == b.score && a.key < b.key);
  };
  std::nth_element(ranked.begin(), ranked.begin() + (k - 1), ranked.end(), better);
  for (int64_t i = 0; i < k; ++i) hw.add(ranked[i].key, 1.0f);
}

void apply_oracle_top_p(const MaskerSpec& m, const float* dots, float scale, HeadWeights& hw) {
  const int64_t n = hw.sk;
  SelectionScratch& s = hw.s;
  // S = scale * q.k (float32), active keys at finfo.min; e = exp(S - rowmax). The active keys
  // get e = 0, so top-p measures the residual mass only (if every key is active, S - max = 0
  // and e = 1 everywhere, as in the reference).
  s.e.resize(static_cast<size_t>(n));
  float row_max = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < n; ++j) {
    const float v = hw.active(j) ? -FLT_MAX : dots[j] * scale;
    s.e[j] = v;
    row_max = std::max(row_max, v);
  }
  double total = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    const float x = std::exp(s.e[j] - row_max);
    s.e[j] = std::isnan(x) ? 0.0f : x;  // a NaN score selects nothing (and cannot stall the search)
    total += s.e[j];
  }

  // tau = s[pos] of the reference: sort e descending into s, c_k = cumsum_k / sum (prefix
  // sums accumulated in double and rounded to float32 per prefix, as torch's CPU cumsum; the
  // division and the comparison in float32), pos = #{k : c_k <= top_p} (searchsorted right),
  // clamped to n - 1. Found without sorting by a three-way quickselect on the prefix mass
  // (expected O(n)): `above` is the mass of the values known to rank before the segment.
  const float total_f = static_cast<float>(total);
  const float top_p = static_cast<float>(m.top_p);
  // A prefix never exceeds the total (torch's total is the last prefix sum); clamping removes
  // the last-bit differences of summing in another order.
  auto exceeds = [&](double prefix) { return static_cast<float>(std::min(prefix, total)) / total_f > top_p; };
  s.sorted.assign(s.e.begin(), s.e.begin() + n);
  float* v = s.sorted.data();
  int64_t lo = 0, hi = n;  // the segment: values ranking lo .. hi - 1
  double above = 0.0;
  float tau = 0.0f;
  bool found = false;
  int depth = 0;
  while (lo < hi && !found) {
    if (++depth > 64) {  // adversarial pivots: finish the segment by sorting it
      std::sort(v + lo, v + hi, std::greater<float>());
      for (int64_t i = lo; i < hi && !found; ++i) {
        above += v[i];
        if (exceeds(above)) {
          tau = v[i];
          found = true;
        }
      }
      break;
    }
    // median of three as the pivot; partition into [> pivot | == pivot | < pivot]
    float a = v[lo], b = v[lo + (hi - lo) / 2], c = v[hi - 1];
    const float pivot = std::max(std::min(a, b), std::min(std::max(a, b), c));
    float* gt_end = std::partition(v + lo, v + hi, [pivot](float x) { return x > pivot; });
    float* eq_end = std::partition(gt_end, v + hi, [pivot](float x) { return x == pivot; });
    double gt_sum = 0.0;
    for (float* x = v + lo; x < gt_end; ++x) gt_sum += *x;
    if (gt_end > v + lo && exceeds(above + gt_sum)) {
      hi = gt_end - v;  // the crossing is among the larger values
      continue;
    }
    const double eq_sum = static_cast<double>(pivot) * static_cast<double>(eq_end - gt_end);
    if (exceeds(above + gt_sum + eq_sum)) {
      tau = pivot;  // crossed within the run of values equal to the pivot
      found = true;
      break;
    }
    above += gt_sum + eq_sum;
    lo = eq_end - v;
  }
  if (!found) tau = *std::min_element(s.e.begin(), s.e.begin() + n);  // pos clamped to n - 1

  // Every key with e >= tau (ties with tau included). In the degenerate case tau == 0 this
  // includes the already-active keys (e = 0): they become clamp(w + 1) = 1, as in the reference.
  for (int64_t j = 0; j < n; ++j)
    if (s.e[j] >= tau) hw.add(j, 1.0f);
}

}  // namespace hotswap::masked::detail
