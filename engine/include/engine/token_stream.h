// The one object shared between the engine thread (producer) and a client session
// (consumer). The engine pushes events and calls the notifier; it never runs session code
// itself beyond that callback, which must only post work elsewhere (e.g. net::post).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace hotswap {

enum class FinishReason { kStop, kLength, kCancelled, kError };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "cancelled", "error"

struct TokenLogprob {
  int32_t token_id = 0;
  float logprob = 0;
};

struct TokenEvent {
  int32_t token_id = -1;       // -1 for a final event that carries no token
  std::string text;            // UTF-8-safe incremental text of this token (may be "")
  float logprob = 0;           // of token_id, when logprobs were asked for
  std::vector<TokenLogprob> top_logprobs;
  std::optional<FinishReason> finish;  // set on the last event
  std::string error;           // with FinishReason::kError
  std::chrono::steady_clock::time_point emitted_at;  // when the engine produced it (TTFT/ITL)
};

// The score of one prompt token (GenerateRequest::prompt_logprobs).
struct PromptLogprob {
  float logprob = 0;
  std::vector<TokenLogprob> top_logprobs;
};

struct StreamUsage {
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_prompt_tokens = 0;  // prompt tokens served from shared prefix blocks
  std::string attention_kernel;  // which kernel ran (specs/attention.md)
  // `masked` (specs/maskers.md): mean density of the sparse queries, their mean relative L2
  // error against dense when asked for, the masker configuration (a metric label) and the
  // seed the sampling maskers used when the request gave none.
  std::optional<double> attention_density;
  std::optional<double> attention_output_error;
  std::string attention_config;
  std::optional<uint64_t> attention_seed;
  // With GenerateRequest::prompt_logprobs, once the whole prompt is computed: entry i scores
  // prompt token i + 1 (the first token has no score). Shared, not copied, between events.
  std::shared_ptr<const std::vector<PromptLogprob>> prompt_logprobs;
};

class TokenStream {
 public:
  using Notifier = std::function<void()>;

  // Consumer side: set before the stream is submitted, or under the lock via set_notifier.
  void set_notifier(Notifier n) {
    std::lock_guard lock(mu_);
    notify_ = std::move(n);
  }
  // Takes every event pushed so far.
  std::vector<TokenEvent> drain() {
    std::lock_guard lock(mu_);
    return std::exchange(events_, {});
  }
  bool finished() const {
    std::lock_guard lock(mu_);
    return finished_;
  }
  StreamUsage usage() const {
    std::lock_guard lock(mu_);
    return usage_;
  }
  // Asks the engine to stop this request; it frees the KV blocks at its next step.
  void cancel() {
    std::lock_guard lock(mu_);
    cancelled_ = true;
  }
  bool cancelled() const {
    std::lock_guard lock(mu_);
    return cancelled_;
  }

  // Producer side (engine thread).
  void push(TokenEvent event, const StreamUsage& usage) {
    Notifier notify;
    event.emitted_at = std::chrono::steady_clock::now();
    {
      std::lock_guard lock(mu_);
      if (event.finish) finished_ = true;
      usage_ = usage;
      events_.push_back(std::move(event));
      notify = notify_;
    }
    if (notify) notify();
  }

 private:
  mutable std::mutex mu_;
  std::vector<TokenEvent> events_;
  StreamUsage usage_;
  Notifier notify_;
  bool finished_ = false;
  bool cancelled_ = false;
};

}  // namespace hotswap
