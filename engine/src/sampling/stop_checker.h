// Decides, token by token, whether a sequence is finished and which text may be streamed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/sampling_params.h"
#include "engine/token_stream.h"

namespace hotswap {

struct StopDecision {
  std::string text_to_emit;           // may be "" (text held back, or nothing new)
  std::optional<FinishReason> finish;  // set once: kStop or kLength
};

// One per sequence; not thread-safe. Fed every generated token in order with the text the
// incremental detokenizer produced for it. Checks, in vLLM's order, for each token:
//   1. an EOS id (unless ignore_eos) or a stop_token_id → kStop; the token's text is dropped.
//   2. a stop string now present in the text → kStop; the output ends right before the
//      earliest occurrence (OpenAI semantics), matches may span token boundaries.
//   3. max_tokens generated (every token counts, EOS included) → kLength.
// While streaming, the longest tail of the text that is a proper prefix of some stop string
// is held back and released as soon as it can no longer start a match. When the checker
// finishes a sequence it releases held text itself (except a completed stop string).
// Empty stop strings are ignored. Text is treated as bytes; UTF-8 boundaries are preserved
// because stop strings and pieces are whole UTF-8 sequences.
class StopChecker {
 public:
  // conditions.max_tokens must be > 0 (validated by Engine::submit; HS_CHECK here).
  StopChecker(const StopConditions& conditions, std::vector<int32_t> eos_ids);

  // Must not be called after a decision carried a finish reason (HS_CHECK).
  StopDecision on_token(int32_t id, std::string_view text_piece);

  // For an end the checker did not decide (cancellation, context limit): returns the text
  // still held back and clears it. Returns "" after the checker finished the sequence.
  std::string flush();

  int num_tokens() const { return num_tokens_; }
  bool finished() const { return finished_; }

 private:
  bool is_stop_token(int32_t id) const;
  // Earliest start of a complete stop string in held_, or npos.
  size_t find_stop_string() const;
  // Length of the longest suffix of held_ that is a proper prefix of a stop string.
  size_t partial_match_length() const;
  StopDecision finish(FinishReason reason, size_t emit_length);

  std::vector<std::string> stop_strings_;
  std::vector<int32_t> stop_ids_;  // EOS (unless ignore_eos) + stop_token_ids
  int max_tokens_;
  size_t max_stop_length_ = 0;
  std::string held_;  // decoded text not yet emitted
  int num_tokens_ = 0;
  bool finished_ = false;
};

}  // namespace hotswap
