// Choosing the next token of one sequence from its logits row, and the logprobs reported
// for it.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/sampling_params.h"
#include "engine/token_stream.h"
#include "sampling/xoshiro256.h"

namespace hotswap {

// One per sequence, created when the request is admitted and kept for its lifetime. Owns
// the sequence's RNG, so a seeded request's tokens depend only on its seed and its own
// logits, never on the batch it shares a step with or on other requests' draws. Results are
// reproducible for a given build; another compiler or -march may round exp/sums differently
// and so, rarely, pick a different token at a probability boundary.
// Not thread-safe: one thread samples a given sequence at a time (different Samplers may
// run on different threads concurrently).
class Sampler {
 public:
  // Temperatures below this are greedy, as in vLLM: dividing by them can overflow float.
  static constexpr float kGreedyTemperature = 1e-5f;

  // params must already be validated (Engine::submit): temperature >= 0, top_p in (0, 1],
  // min_p in [0, 1], repetition_penalty > 0; violations are HS_CHECK failures. The RNG seed
  // is params.seed if set, else fallback_seed (the engine picks one per request).
  Sampler(const SamplingParams& params, uint64_t fallback_seed);

  // logits: [vocab] float32 raw model output for the next position; overwritten with the
  // processed values (callers that want logprobs must copy it first, see compute_logprobs).
  // prompt_ids / output_ids: the sequence's tokens so far, for the penalties.
  // Greedy: penalties, then the first index of the maximum; consumes no randomness.
  // Otherwise: penalties → temperature → top-k → top-p → min-p, then one draw from the
  // softmax of what is left, consuming exactly one 64-bit RNG output per call.
  int32_t sample(std::span<float> logits, std::span<const int32_t> prompt_ids,
                 std::span<const int32_t> output_ids);

  bool greedy() const { return params_.temperature < kGreedyTemperature; }
  uint64_t seed() const { return seed_; }
  const SamplingParams& params() const { return params_; }

 private:
  // Inverse-CDF draw over softmax(logits), tokens in id order.
  int32_t draw(std::span<const float> logits);

  SamplingParams params_;
  uint64_t seed_;
  Xoshiro256 rng_;
};

struct Logprobs {
  float chosen = 0;                 // log p(chosen)
  std::vector<TokenLogprob> top;    // top_n most likely, logprob descending, ties: lower id first
};

// log_softmax of the RAW model logits (before penalties and temperature; vLLM's default
// "raw_logprobs"), evaluated at `chosen` and at the top_n most likely tokens. top_n is
// clamped to the vocab size; 0 gives an empty list. Since Sampler::sample overwrites its
// row, call this on a copy taken before sampling.
Logprobs compute_logprobs(std::span<const float> raw_logits, int32_t chosen, int top_n);

}  // namespace hotswap
