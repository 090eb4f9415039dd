// The AsyncResponse of one generation request (/v1/completions or /v1/chat/completions):
// its choices are separate engine requests (n > 1, several prompts), each with its own
// TokenStream. The job turns their events into OpenAI responses: one JSON body when all
// choices have finished, or SSE chunks as tokens arrive.
// Threading: session strand only (AsyncResponse); the engine thread only calls the wake
// callback through each stream's notifier.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api/schema.h"
#include "engine/engine.h"
#include "engine/token_stream.h"
#include "http/http_types.h"
#include "metrics/metrics.h"

namespace hotswap::server {

enum class Endpoint { kCompletions, kChat };

struct JobPrompt {
  std::vector<int32_t> ids;
  std::string text;  // the prompt as text (decoded for token-id prompts); echoed with `echo`
};

struct JobChoice {
  int index = 0;         // choice index in the response
  int prompt_index = 0;  // which JobPrompt
  std::shared_ptr<TokenStream> stream;
};

struct JobSpec {
  Endpoint endpoint = Endpoint::kCompletions;
  ResponseHeader header;     // id "cmpl-..." / "chatcmpl-...", created, the model as echoed
  bool stream = false;
  bool include_usage = false;
  bool echo = false;         // completions only
  int logprobs = -1;         // -1 = none; else alternatives per token
  std::vector<JobPrompt> prompts;
  std::vector<JobChoice> choices;
  const Engine* engine = nullptr;  // token strings for logprobs
  Metrics* metrics = nullptr;
  std::chrono::steady_clock::time_point submitted_at;
};

class GenerationJob : public AsyncResponse {
 public:
  explicit GenerationJob(JobSpec spec);
  ~GenerationJob() override;

  void start(Wake wake) override;
  ResponseProgress poll() override;
  void cancel() override;
  AccessInfo access_info() const override;

 private:
  struct ChoiceState;

  void take_events();  // drains every stream into its ChoiceState
  bool all_finished() const;
  ResponseProgress full_response();
  std::string stream_frames();
  Usage usage() const;

  // The response of each endpoint is built here only, the whole body and every chunk alike:
  // a choice from its pending events (which it consumes), and the body or chunk around choices.
  CompletionChoice completion_choice(std::size_t i, bool echo, bool finishing);
  ChatChoice chat_choice(std::size_t i, bool whole, bool finishing);
  std::string completion_json(std::vector<CompletionChoice> choices, std::optional<Usage> usage) const;
  std::string chat_json(bool chunk, std::vector<ChatChoice> choices, std::optional<Usage> usage) const;

  JobSpec spec_;
  std::vector<ChoiceState> states_;
  bool head_sent_ = false;
  bool ended_ = false;
};

// OpenAI's finish_reason for an engine FinishReason.
const char* openai_finish_reason(FinishReason reason);

}  // namespace hotswap::server
