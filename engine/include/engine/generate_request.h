// One generation request as the engine sees it: plain structs, no protobuf, no JSON.
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
};

}  // namespace hotswap
