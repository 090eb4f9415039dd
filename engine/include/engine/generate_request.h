// One generation request as the engine sees it: plain structs, no JSON.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/attention_choice.h"
#include "engine/sampling_params.h"

namespace hotswap {

struct GenerateRequest {
  std::string request_id;          // for logs and metrics; the server makes one
  std::vector<int32_t> prompt_ids;  // already tokenized (the server renders chat templates)
  SamplingParams sampling;
  StopConditions stop;
  AttentionChoice attention;
  std::string adapter;             // "" = none
  int top_logprobs = -1;           // -1 = no logprobs; 0.. = sampled token + that many alternatives
  // Score the prompt too (completions' echo + logprobs; `hotswap eval`'s perplexity): the
  // log-probability of every prompt token after the first, given the tokens before it, with
  // top_logprobs alternatives (0 when top_logprobs is -1). Such a request computes its whole
  // prompt (no prefix-cache reuse) and may ask for max_tokens 0 (score only, generate nothing).
  bool prompt_logprobs = false;
};

}  // namespace hotswap
