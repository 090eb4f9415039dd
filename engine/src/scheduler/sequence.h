// The engine's mutable state for one request (the API-facing object is TokenStream).
// Engine thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "attention/attention_backend.h"
#include "attention/sequence_attention.h"
#include "engine/generate_request.h"
#include "engine/token_stream.h"
#include "kv_cache/block_table.h"
#include "sampling/sampler.h"
#include "sampling/stop_checker.h"
#include "tokenizer/tokenizer.h"

namespace hotswap {

using Clock = std::chrono::steady_clock;

struct Sequence {
  Sequence(uint64_t id, GenerateRequest request, std::shared_ptr<TokenStream> stream, SequenceAttention attention,
           const Tokenizer& tokenizer, std::vector<int32_t> eos_ids);

  uint64_t id;
  GenerateRequest request;
  std::shared_ptr<TokenStream> stream;
  SequenceAttention attention;

  std::vector<int32_t> tokens;  // prompt followed by generated tokens
  int num_prompt_tokens = 0;
  int num_computed = 0;         // leading tokens whose K/V are in the cache
  int num_cached_prompt = 0;    // prompt tokens served from shared prefix blocks
  BlockTable blocks;
  std::unique_ptr<BackendSequenceState> attention_state;  // the backend's, if it keeps one; freed with the sequence
  // request.prompt_logprobs: entry i scores prompt token i + 1, filled as the prompt is
  // computed (a recomputation after preemption writes the same values again); published to
  // the stream's usage once complete.
  std::vector<PromptLogprob> prompt_scores;
  std::shared_ptr<const std::vector<PromptLogprob>> prompt_logprobs;

  Sampler sampler;
  StopChecker stop;
  IncrementalDecoder decoder;

  Clock::time_point arrival = Clock::now();
  Clock::time_point last_token_time{};
  bool first_token_sent = false;

  int num_generated() const { return static_cast<int>(tokens.size()) - num_prompt_tokens; }
  int num_uncomputed() const { return static_cast<int>(tokens.size()) - num_computed; }
  bool decoding() const { return num_uncomputed() == 1 && num_generated() > 0; }
  bool scores_prompt() const { return request.prompt_logprobs && num_computed < num_prompt_tokens; }
  std::span<const int32_t> prompt() const { return {tokens.data(), static_cast<size_t>(num_prompt_tokens)}; }
  std::span<const int32_t> output() const {
    return {tokens.data() + num_prompt_tokens, static_cast<size_t>(num_generated())};
  }
};

}  // namespace hotswap
