#include "sampling/logits_processors.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <vector>

#include "core/check.h"
#include "sampling/row_ops.h"

namespace hotswap {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// top-k at or below this k uses heap selection over the row (one pass, indices kept);
// above it, nth_element over a copy of the values is cheaper than a large heap.
constexpr int kHeapTopK = 1024;

// top-p histogram: buckets of 1/16 nat below the max logit, covering 32 nats; everything
// further down (prob ratio < e^-32 ≈ 1e-14) shares the last bucket. Bucket order equals
// logit order, so only the bucket holding the top_p boundary ever needs sorting.
constexpr float kBucketsPerNat = 16.0f;
constexpr float kHistogramNats = 32.0f;
constexpr int kTailBucket = static_cast<int>(kBucketsPerNat * kHistogramNats);
constexpr int kNumBuckets = kTailBucket + 1;
// Interleaved histogram copies, so consecutive entries rarely wait on the same counter.
constexpr int kHistogramCopies = 4;
// top-p first tries the nucleus among this many best tokens (typical nuclei are far smaller).
constexpr size_t kTopPCandidates = 256;
// Block size of the vectorised "any" tests that let scalar loops skip masked regions.
constexpr size_t kSkipBlock = 64;

// Per-thread counters indexed by token id, all zero between calls: each user restores the
// entries it touched, so a call costs O(len(ids)), not O(vocab).
std::vector<int32_t>& zeroed_counts(size_t vocab) {
  thread_local std::vector<int32_t> counts;
  if (counts.size() < vocab) counts.resize(vocab, 0);
  return counts;
}

void check_ids(std::span<const int32_t> ids, size_t vocab) {
  for (int32_t id : ids) {
    HS_CHECK(id >= 0 && static_cast<size_t>(id) < vocab) << "token id " << id << " outside vocab " << vocab;
  }
}

// Fast path: the kTopPCandidates best tokens, ranked exactly by select_top. If their mass
// already reaches top_p the nucleus is a prefix of them, and the last one it needs is the
// cutoff. nullopt when the nucleus is larger (flat distributions).
std::optional<int32_t> top_p_cutoff_in_candidates(std::span<const float> logits, float max_logit, float top_p) {
  const double target = static_cast<double>(top_p) * sampling::sum_exp(logits, max_logit);
  const int k = static_cast<int>(std::min<size_t>(kTopPCandidates, logits.size()));
  thread_local std::vector<int32_t> candidates;
  sampling::select_top(logits, k, candidates);
  double cumulative = 0;
  for (int32_t id : candidates) {
    cumulative += sampling::fast_exp(logits[id] - max_logit);
    if (cumulative >= target) return id;
  }
  // Every token was a candidate and rounding kept the sum a hair below target: keep all.
  if (static_cast<size_t>(k) == logits.size()) return candidates.back();
  return std::nullopt;
}

// General path, O(vocab) without a full sort: a histogram of probability mass by distance
// from the max logit finds the bucket holding the boundary; only that bucket is sorted.
int32_t top_p_cutoff_by_histogram(std::span<const float> logits, float max_logit, float top_p) {
  struct Scratch {
    std::vector<float> probs;       // [vocab] exp(logit - max)
    std::vector<uint16_t> buckets;  // [vocab] histogram bucket per token
    std::vector<double> mass;       // [kHistogramCopies * kNumBuckets]
    std::vector<int32_t> boundary;  // token ids in the boundary bucket
  };
  thread_local Scratch s;
  const size_t n = logits.size();
  s.probs.resize(n);
  s.buckets.resize(n);
  s.mass.assign(static_cast<size_t>(kHistogramCopies) * kNumBuckets, 0.0);

  // Pass 1, vectorised: unnormalised probability and histogram bucket of every token.
  const float* l = logits.data();
  float* probs = s.probs.data();
  uint16_t* buckets = s.buckets.data();
  for (size_t i = 0; i < n; ++i) {
    const float d = max_logit - l[i];  // >= 0; +inf for a masked token
    probs[i] = sampling::fast_exp(-d);
    buckets[i] = static_cast<uint16_t>(d < kHistogramNats ? static_cast<int>(d * kBucketsPerNat) : kTailBucket);
  }
  // Pass 2: histogram of probability mass; blocks of masked tokens (prob 0) are skipped.
  double* mass = s.mass.data();
  for (size_t begin = 0; begin < n; begin += kSkipBlock) {
    const size_t end = std::min(n, begin + kSkipBlock);
    int any = 0;
    for (size_t i = begin; i < end; ++i) any |= probs[i] != 0.0f;
    if (!any) continue;
    for (size_t i = begin; i < end; ++i) mass[(i % kHistogramCopies) * kNumBuckets + buckets[i]] += probs[i];
  }
  for (int c = 1; c < kHistogramCopies; ++c) {
    for (int b = 0; b < kNumBuckets; ++b) mass[b] += mass[c * kNumBuckets + b];
  }
  // The total is summed in the same order as the scan below, so the scan reaches it exactly.
  double total = 0;
  for (int b = 0; b < kNumBuckets; ++b) total += mass[b];
  const double target = static_cast<double>(top_p) * total;
  double mass_above = 0;  // mass of the buckets ranked before the boundary bucket
  int boundary_bucket = kTailBucket;
  for (int b = 0; b < kNumBuckets; ++b) {
    if (mass_above + mass[b] >= target) {
      boundary_bucket = b;
      break;
    }
    mass_above += mass[b];
  }

  // Pass 3: rank the boundary bucket exactly and find the last token the nucleus needs.
  s.boundary.clear();
  for (size_t begin = 0; begin < n; begin += kSkipBlock) {
    const size_t end = std::min(n, begin + kSkipBlock);
    int any = 0;
    for (size_t i = begin; i < end; ++i) any |= buckets[i] == boundary_bucket;
    if (!any) continue;
    for (size_t i = begin; i < end; ++i) {
      if (buckets[i] == boundary_bucket && probs[i] != 0.0f) s.boundary.push_back(static_cast<int32_t>(i));
    }
  }
  HS_CHECK(!s.boundary.empty()) << "top_p boundary bucket " << boundary_bucket << " is empty";
  std::sort(s.boundary.begin(), s.boundary.end(), sampling::RanksBefore{l});
  double cumulative = mass_above;
  for (int32_t id : s.boundary) {
    cumulative += probs[id];
    if (cumulative >= target) return id;
  }
  return s.boundary.back();  // rounding never reached target: keep the whole bucket
}

// Masks (-inf) every token that ranks after `cutoff` in RanksBefore order. Vectorised.
void mask_ranked_after(std::span<float> logits, int32_t cutoff) {
  const float cutoff_logit = logits[cutoff];
  float* out = logits.data();
  const size_t split = static_cast<size_t>(cutoff) + 1;
  for (size_t i = 0; i < split; ++i) out[i] = out[i] < cutoff_logit ? kNegInf : out[i];
  for (size_t i = split; i < logits.size(); ++i) out[i] = out[i] <= cutoff_logit ? kNegInf : out[i];
}

}  // namespace

void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> prompt_ids,
                              std::span<const int32_t> output_ids, float penalty) {
  if (penalty == 1.0f) return;
  HS_CHECK(penalty > 0.0f) << "repetition_penalty " << penalty;
  const size_t vocab = logits.size();
  check_ids(prompt_ids, vocab);
  check_ids(output_ids, vocab);
  std::vector<int32_t>& seen = zeroed_counts(vocab);
  auto penalise = [&](std::span<const int32_t> ids) {
    for (int32_t id : ids) {
      if (seen[id] != 0) continue;  // distinct tokens only: penalise once
      seen[id] = 1;
      float& l = logits[id];
      l = l > 0.0f ? l / penalty : l * penalty;
    }
  };
  penalise(prompt_ids);
  penalise(output_ids);
  for (int32_t id : prompt_ids) seen[id] = 0;
  for (int32_t id : output_ids) seen[id] = 0;
}

void apply_presence_frequency_penalties(std::span<float> logits, std::span<const int32_t> output_ids,
                                        float presence, float frequency) {
  if (presence == 0.0f && frequency == 0.0f) return;
  const size_t vocab = logits.size();
  check_ids(output_ids, vocab);
  std::vector<int32_t>& counts = zeroed_counts(vocab);
  for (int32_t id : output_ids) ++counts[id];
  for (int32_t id : output_ids) {
    if (counts[id] == 0) continue;  // already applied for this token
    // Two subtractions in vLLM's order, so the float arithmetic matches vLLM's.
    logits[id] -= frequency * static_cast<float>(counts[id]);
    logits[id] -= presence;
    counts[id] = 0;
  }
}

void apply_temperature(std::span<float> logits, float temperature) {
  if (temperature == 1.0f) return;
  HS_CHECK(temperature > 0.0f) << "temperature " << temperature;
  // Division, not multiplication by 1/T, to match HF and vLLM bit for bit.
  for (float& l : logits) l /= temperature;
}

void apply_top_k(std::span<float> logits, int top_k) {
  if (top_k <= 0 || static_cast<size_t>(top_k) >= logits.size()) return;
  float threshold;
  if (top_k <= kHeapTopK) {
    thread_local std::vector<int32_t> top;
    sampling::select_top(logits, top_k, top);
    threshold = logits[top.back()];
  } else {
    thread_local std::vector<float> values;
    values.resize(logits.size());
    std::transform(logits.begin(), logits.end(), values.begin(), sampling::rank_key);
    std::nth_element(values.begin(), values.begin() + (top_k - 1), values.end(), std::greater<float>());
    threshold = values[top_k - 1];
  }
  for (float& l : logits) l = l < threshold ? kNegInf : l;
}

void apply_top_p(std::span<float> logits, float top_p) {
  if (top_p >= 1.0f) return;
  HS_CHECK(top_p > 0.0f) << "top_p " << top_p;
  const float max_logit = sampling::max_value(logits);
  if (max_logit == kNegInf) return;  // nothing left to choose from; the caller decides
  std::optional<int32_t> cutoff = top_p_cutoff_in_candidates(logits, max_logit, top_p);
  if (!cutoff) cutoff = top_p_cutoff_by_histogram(logits, max_logit, top_p);
  mask_ranked_after(logits, *cutoff);
}

void apply_min_p(std::span<float> logits, float min_p) {
  if (min_p <= 0.0f) return;
  HS_CHECK(min_p <= 1.0f) << "min_p " << min_p;
  const float max_logit = sampling::max_value(logits);
  if (max_logit == kNegInf) return;
  const float log_min_p = std::log(min_p);
  for (float& l : logits) l = l - max_logit < log_min_p ? kNegInf : l;
}

}  // namespace hotswap
