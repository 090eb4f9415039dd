#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/check.h"
#include "sampling/logits_processors.h"
#include "sampling/row_ops.h"

namespace hotswap {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

}  // namespace

Sampler::Sampler(const SamplingParams& params, uint64_t fallback_seed)
    : params_(params), seed_(params.seed.value_or(fallback_seed)), rng_(seed_) {
  HS_CHECK(std::isfinite(params.temperature) && params.temperature >= 0.0f) << "temperature " << params.temperature;
  HS_CHECK(params.top_p > 0.0f && params.top_p <= 1.0f) << "top_p " << params.top_p;
  HS_CHECK(params.min_p >= 0.0f && params.min_p <= 1.0f) << "min_p " << params.min_p;
  HS_CHECK(params.repetition_penalty > 0.0f) << "repetition_penalty " << params.repetition_penalty;
}

int32_t Sampler::sample(std::span<float> logits, std::span<const int32_t> prompt_ids,
                        std::span<const int32_t> output_ids) {
  HS_CHECK(!logits.empty()) << "empty logits row";
  apply_repetition_penalty(logits, prompt_ids, output_ids, params_.repetition_penalty);
  apply_presence_frequency_penalties(logits, output_ids, params_.presence_penalty, params_.frequency_penalty);
  if (greedy()) {
    // top-k/top-p/min-p always keep the maximum, so they cannot change the argmax.
    const int32_t id = sampling::argmax_first(logits);
    HS_CHECK(id >= 0) << "no maximum in a logits row of " << logits.size() << " (NaN?)";
    return id;
  }
  apply_temperature(logits, params_.temperature);
  apply_top_k(logits, params_.top_k);
  apply_top_p(logits, params_.top_p);
  apply_min_p(logits, params_.min_p);
  return draw(logits);
}

int32_t Sampler::draw(std::span<const float> logits) {
  const float max_logit = sampling::max_value(logits);
  HS_CHECK(max_logit > kNegInf) << "every token is masked";
  // Block sums first, so finding the sampled token scans one block, not the whole row.
  thread_local std::vector<double> block_sums;
  sampling::block_sum_exp(logits, max_logit, block_sums);
  double total = 0;
  for (double s : block_sums) total += s;
  double target = rng_.next_double() * total;

  double cumulative = 0;
  size_t block = block_sums.size();
  for (size_t b = 0; b < block_sums.size(); ++b) {
    if (cumulative + block_sums[b] > target) {
      block = b;
      break;
    }
    cumulative += block_sums[b];
  }
  if (block == block_sums.size()) {
    // target rounded up to the total: the draw belongs to the last token with mass.
    block = block_sums.size() - 1;
    while (block_sums[block] == 0.0) --block;  // the block holding max_logit has mass >= 1
    target = std::numeric_limits<double>::infinity();
  }
  const size_t begin = block * sampling::kSumBlock;
  const size_t end = std::min(logits.size(), begin + sampling::kSumBlock);
  int32_t last_with_mass = -1;
  for (size_t i = begin; i < end; ++i) {
    const float p = sampling::fast_exp(logits[i] - max_logit);
    if (p == 0.0f) continue;
    last_with_mass = static_cast<int32_t>(i);
    cumulative += p;
    if (cumulative > target) return last_with_mass;
  }
  // Lane-order rounding of the block sum differs from this scan by a few ulp: a draw in
  // that sliver belongs to the block's last token with mass.
  HS_CHECK(last_with_mass >= 0) << "sampled block " << block << " has no mass";
  return last_with_mass;
}

Logprobs compute_logprobs(std::span<const float> raw_logits, int32_t chosen, int top_n) {
  HS_CHECK(chosen >= 0 && static_cast<size_t>(chosen) < raw_logits.size())
      << "chosen token " << chosen << " outside vocab " << raw_logits.size();
  HS_CHECK(top_n >= 0) << "top_n " << top_n;
  const float max_logit = sampling::max_value(raw_logits);
  HS_CHECK(max_logit > kNegInf) << "every raw logit is -inf";
  const double log_normaliser = max_logit + std::log(sampling::sum_exp(raw_logits, max_logit));

  Logprobs result;
  result.chosen = static_cast<float>(raw_logits[chosen] - log_normaliser);
  const int k = static_cast<int>(std::min<size_t>(static_cast<size_t>(top_n), raw_logits.size()));
  thread_local std::vector<int32_t> top;
  sampling::select_top(raw_logits, k, top);
  result.top.reserve(top.size());
  for (int32_t id : top) {
    result.top.push_back({.token_id = id, .logprob = static_cast<float>(raw_logits[id] - log_normaliser)});
  }
  return result;
}

}  // namespace hotswap
