// Random sampling (Part 2 §5.1) and adaptive (vAttention) sampling (§5.3) for one query head.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "attention/masked/select_internal.h"
#include "core/check.h"

namespace hotswap::masked {
namespace detail {
namespace {

// Clamp-adds r once to every distinct key of scratch.draws (a row-wise scatter collapses
// duplicate draws to one entry before the merge).
void add_distinct_draws(float r, HeadWeights& hw) {
  SelectionScratch& s = hw.s;
  const uint32_t epoch = new_stamp_epoch(s, hw.sk);
  for (int32_t j : s.draws) {
    if (s.stamp[j] == epoch) continue;
    s.stamp[j] = epoch;
    hw.add(j, r);
  }
}

// Steps 5-8 of §5.3 on the nb base draws; `distinct` is a buffer for their distinct keys.
AdaptiveBudget budget_impl(const MaskerSpec& spec, std::span<const float> e, double d_static, int64_t start,
                           int64_t end, std::span<const int32_t> base, std::vector<int32_t>& distinct) {
  const int64_t range = end - start;
  const int64_t nb = static_cast<int64_t>(base.size());
  HS_CHECK(range >= 2 && nb == adaptive_base_count(spec, range))
      << "adaptive budget: range " << range << ", " << nb << " base draws, expected "
      << adaptive_base_count(spec, range);

  // sigma = unbiased std of e over the draws (duplicates count), float32, clamped >= 1e-8.
  double mean = 0.0;
  for (int32_t j : base) {
    HS_CHECK(j >= start && j < end && static_cast<size_t>(j) < e.size()) << "base draw " << j;
    mean += e[j];
  }
  mean /= static_cast<double>(nb);
  double ss = 0.0;
  for (int32_t j : base) ss += (e[j] - mean) * (e[j] - mean);
  const float sigma = std::max(static_cast<float>(std::sqrt(ss / static_cast<double>(nb - 1))), 1e-8f);

  // D_sampled: each distinct base key once, e_j * (1 / (nb/R + 1e-6)), all in float32.
  const float base_p = static_cast<float>(static_cast<double>(nb) / static_cast<double>(range));
  const float inv = 1.0f / (base_p + 1e-6f);
  distinct.assign(base.begin(), base.end());
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  double d_sampled = 0.0;
  for (int32_t j : distinct) d_sampled += e[j] * inv;
  const float d_hat = static_cast<float>(d_static) + static_cast<float>(d_sampled);

  // budget = long(clamp((z sigma R / max(eps D, 1e-8))^2, 1, R)), then clamp(budget, nb, R).
  const float allowed = std::max(static_cast<float>(spec.epsilon) * d_hat, 1e-8f);
  const float numerator = static_cast<float>(spec.z) * sigma * static_cast<float>(range);
  const float ratio = numerator / allowed;
  const float squared = std::clamp(ratio * ratio, 1.0f, static_cast<float>(range));
  int64_t budget = static_cast<int64_t>(squared);
  budget = std::clamp(budget, nb, range);
  const float p = static_cast<float>(budget) / static_cast<float>(range);
  return {budget, p};
}

}  // namespace

void apply_random_sampling(const MaskerSpec& m, const QueryContext& ctx, int head, HeadWeights& hw) {
  // n = int(rate * sk) draws over all keys [0, sk), with replacement, weight = rate. Decision
  // (docs/masked-attention.md): n == 0, where the reference raises, adds nothing; the mask
  // still counts as written (SPARSE), so a row left with no key falls back to dense.
  const int64_t n = static_cast<int64_t>(m.sampling_rate * static_cast<double>(hw.sk));
  if (n <= 0) return;
  draw(ctx, head, RngStream::kRandomSampling, n, 0, hw.sk, hw.s);
  add_distinct_draws(static_cast<float>(m.sampling_rate), hw);
}

void apply_adaptive_sampling(const MaskerSpec& m, const QueryContext& ctx, int head, bool prev_empty,
                             const float* dots, HeadWeights& hw) {
  SelectionScratch& s = hw.s;
  const int64_t sk = hw.sk;
  const AdaptiveRange r = adaptive_range(m, sk);  // size() >= 2 (not FULL)

  // e = exp(scale q.k - rowmax) over every key, float32.
  s.e.resize(static_cast<size_t>(sk));
  float row_max = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < sk; ++j) {
    s.e[j] = dots[j] * ctx.scale;
    row_max = std::max(row_max, s.e[j]);
  }
  for (int64_t j = 0; j < sk; ++j) s.e[j] = std::exp(s.e[j] - row_max);

  // D_static: Σ e over all keys when the previous mask is EMPTY; otherwise Σ over its active
  // keys of e_j * (1 / (w_j + 1e-6)) (float32 terms).
  double d_static = 0.0;
  if (prev_empty) {
    for (int64_t j = 0; j < sk; ++j) d_static += s.e[j];
  } else {
    for (int32_t j : s.touched) d_static += s.e[j] * (1.0f / (hw.weight(j) + 1e-6f));
  }
  d_static = static_cast<float>(d_static);

  // Base sample (stream kAdaptiveBase): only for sigma and D-hat; it is not merged.
  const int64_t nb = adaptive_base_count(m, r.size());
  draw(ctx, head, RngStream::kAdaptiveBase, nb, r.start, r.end, s);
  const AdaptiveBudget b = budget_impl(m, s.e, d_static, r.start, r.end, s.draws, s.dedupe);

  // Adaptive sample (stream kAdaptiveBudget): `budget` draws over [start, end), weight p.
  draw(ctx, head, RngStream::kAdaptiveBudget, b.budget, r.start, r.end, s);
  add_distinct_draws(static_cast<float>(b.probability), hw);
}

}  // namespace detail

AdaptiveBudget adaptive_budget(const MaskerSpec& spec, std::span<const float> e, double d_static,
                               int64_t start, int64_t end, std::span<const int32_t> base_sample) {
  std::vector<int32_t> distinct;
  return detail::budget_impl(spec, e, d_static, start, end, base_sample, distinct);
}

}  // namespace hotswap::masked
