// How the next token is chosen, per request. Plain data; each field's valid values are in
// engine/request_fields.h, checked by Engine::submit.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hotswap {

struct SamplingParams {
  float temperature = 1.0f;         // 0 = greedy
  int top_k = 0;                    // 0 (or negative) = off
  float top_p = 1.0f;               // 1 = off
  float min_p = 0.0f;               // 0 = off
  float repetition_penalty = 1.0f;  // 1 = off; HF/CTRL semantics over prompt + output
  float presence_penalty = 0.0f;    // OpenAI semantics over the output
  float frequency_penalty = 0.0f;   // OpenAI semantics over the output
  std::optional<uint64_t> seed;     // same seed + same inputs -> same tokens
};

struct StopConditions {
  int max_tokens = 16;
  std::vector<std::string> stop_strings;  // output ends before the first match
  std::vector<int32_t> stop_token_ids;    // in addition to the model's EOS ids
  bool ignore_eos = false;
};

}  // namespace hotswap
