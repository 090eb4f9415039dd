// In-place transforms of one float32 logits row [vocab], applied per sequence before a token
// is chosen. The Sampler runs them in vLLM/HF order:
//   repetition penalty → presence/frequency penalties → temperature → top-k → top-p → min-p.
// A filtered-out token gets -inf (probability 0); every filter keeps at least one token.
// Each function is a no-op for its "off" value (the defaults in SamplingParams).
//
// Cost: penalties are O(len(ids)); the others are a few vectorised passes over the row with
// no full sort (top-k: heap selection; top-p: a logit histogram, then a sort of one bucket).
// Threading: safe to call concurrently on different rows. Scratch buffers are thread_local
// (O(vocab) bytes per thread), so after the first call on a thread nothing is allocated.
// Token ids must lie in [0, vocab): anything else is an engine bug (HS_CHECK).
#pragma once

#include <cstdint>
#include <span>

namespace hotswap {

// HF / CTRL (Keskar et al. 2019): for every distinct token in prompt + output,
// logit > 0 ? logit / penalty : logit * penalty. penalty > 0; 1 = off.
void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> prompt_ids,
                              std::span<const int32_t> output_ids, float penalty);

// OpenAI: logit -= frequency * count + presence * (count > 0), count = occurrences of the
// token in output_ids only (the prompt is not counted). Both 0 = off; negatives encourage.
void apply_presence_frequency_penalties(std::span<float> logits, std::span<const int32_t> output_ids,
                                        float presence, float frequency);

// logit /= temperature. temperature > 0; 1 = off. (Greedy, temperature 0, is the Sampler's
// decision and never reaches here.)
void apply_temperature(std::span<float> logits, float temperature);

// Keeps the tokens whose logit is >= the k-th largest logit, as HF's TopKLogitsWarper and
// vLLM do: a tie at the k-th value keeps every tied token, so more than k may survive.
// top_k <= 0 or top_k >= vocab = off.
void apply_top_k(std::span<float> logits, int top_k);

// Nucleus: with tokens ranked by logit descending (ties: lower token id first), keeps the
// shortest prefix of the ranking whose softmax mass is >= top_p; always at least one token.
// Probabilities are taken over the tokens still unmasked, i.e. after top-k.
// top_p in (0, 1]; 1 = off.
void apply_top_p(std::span<float> logits, float top_p);

// Drops tokens with prob < min_p * max_prob, evaluated as logit - max_logit < log(min_p).
// The most likely token (and anything tied with it) always survives. min_p in [0, 1]; 0 = off.
void apply_min_p(std::span<float> logits, float min_p);

}  // namespace hotswap
