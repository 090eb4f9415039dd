#include "handlers/generation_job.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "api/response_codec.h"
#include "api/status_to_http.h"
#include "http/sse.h"

namespace hotswap::server {

using Clock = std::chrono::steady_clock;

const char* openai_finish_reason(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
  }
  return "error";
}

struct GenerationJob::ChoiceState {
  // Drained, not yet turned into output: until the next chunk when streaming, else until the
  // body is built.
  std::vector<TokenEvent> pending;
  int text_offset = 0;            // completions logprobs: offset of the next token's text
  int tokens = 0;
  std::optional<FinishReason> finish;
  std::string error;
  bool opened = false;            // streaming: the opening chunk (role, echo) is out
  bool closed = false;            // streaming: the finish chunk is out
  bool first_token_seen = false;
  Clock::time_point last_token_at;
  StreamUsage usage;
};

namespace {

std::string token_text(const Engine& engine, int32_t id) { return engine.decode({id}, /*skip_special_tokens=*/false); }

std::vector<TopLogprob> top_logprobs(const Engine& engine, const std::vector<TokenLogprob>& alternatives) {
  std::vector<TopLogprob> top;
  top.reserve(alternatives.size());
  for (const TokenLogprob& alt : alternatives) top.push_back({token_text(engine, alt.token_id), alt.logprob});
  return top;
}

// Entries for echoed prompt tokens: the engine's prompt scores (GenerateRequest::
// prompt_logprobs; `scores[j - 1]` scores token j), null for the first token, which nothing
// predicts, and for every token when the scores are absent. Offsets count from 0.
void append_prompt_logprobs(const Engine& engine, const std::vector<int32_t>& ids,
                            const std::vector<PromptLogprob>* scores, std::vector<CompletionTokenLogprob>* out) {
  int offset = 0;
  for (size_t j = 0; j < ids.size(); ++j) {
    CompletionTokenLogprob& entry = out->emplace_back();
    entry.token = token_text(engine, ids[j]);
    entry.text_offset = offset;
    offset += static_cast<int>(entry.token.size());
    const PromptLogprob* score = (scores != nullptr && j > 0 && j - 1 < scores->size()) ? &(*scores)[j - 1] : nullptr;
    if (score == nullptr) continue;
    entry.logprob = score->logprob;
    entry.top_logprobs = top_logprobs(engine, score->top_logprobs);
  }
}

void append_completion_logprobs(const Engine& engine, const std::vector<TokenEvent>& events, int* offset,
                                std::vector<CompletionTokenLogprob>* out) {
  for (const TokenEvent& e : events) {
    if (e.token_id < 0) continue;
    CompletionTokenLogprob& entry = out->emplace_back();
    entry.token = token_text(engine, e.token_id);
    entry.logprob = e.logprob;
    entry.top_logprobs = top_logprobs(engine, e.top_logprobs);
    entry.text_offset = *offset;
    *offset += static_cast<int>(entry.token.size());
  }
}

std::vector<ChatTokenLogprob> chat_logprobs(const Engine& engine, const std::vector<TokenEvent>& events) {
  std::vector<ChatTokenLogprob> out;
  for (const TokenEvent& e : events) {
    if (e.token_id < 0) continue;
    out.push_back({token_text(engine, e.token_id), e.logprob, top_logprobs(engine, e.top_logprobs)});
  }
  return out;
}

std::string concat_text(const std::vector<TokenEvent>& events) {
  std::string text;
  for (const TokenEvent& e : events) text += e.text;
  return text;
}

bool has_tokens(const std::vector<TokenEvent>& events) {
  for (const TokenEvent& e : events)
    if (e.token_id >= 0) return true;
  return false;
}

std::string error_frame(const std::string& message) {
  return sse_event(to_json(ErrorBody{message, "server_error", "", "generation_failed"}));
}

std::string failure_message(const std::string& error) {
  return "generation failed: " + (error.empty() ? std::string("engine error") : error);
}

}  // namespace

GenerationJob::GenerationJob(JobSpec spec) : spec_(std::move(spec)), states_(spec_.choices.size()) {
  for (std::size_t i = 0; i < spec_.choices.size(); ++i) {
    const JobPrompt& prompt = spec_.prompts[spec_.choices[i].prompt_index];
    // OpenAI's text_offset counts from the start of the prompt (echoed or not).
    states_[i].text_offset = static_cast<int>(prompt.text.size());
  }
}

GenerationJob::~GenerationJob() {
  for (const JobChoice& c : spec_.choices) {
    c.stream->set_notifier(nullptr);
    if (!c.stream->finished()) c.stream->cancel();
  }
}

void GenerationJob::start(Wake wake) {
  for (const JobChoice& c : spec_.choices) c.stream->set_notifier(wake);
  // Events pushed before the notifier was set would otherwise wait for the next push.
  if (wake) wake();
}

void GenerationJob::cancel() {
  for (const JobChoice& c : spec_.choices) c.stream->cancel();
}

bool GenerationJob::all_finished() const {
  for (const ChoiceState& s : states_)
    if (!s.finish) return false;
  return true;
}

void GenerationJob::take_events() {
  for (std::size_t i = 0; i < spec_.choices.size(); ++i) {
    ChoiceState& s = states_[i];
    if (s.finish) continue;
    const std::shared_ptr<TokenStream>& stream = spec_.choices[i].stream;
    std::vector<TokenEvent> events = stream->drain();
    if (events.empty()) continue;
    s.usage = stream->usage();
    int new_tokens = 0;
    for (const TokenEvent& e : events) {
      if (e.token_id >= 0) {
        ++new_tokens;
        // Latencies from the engine's emission times, not from when the session drained them.
        if (spec_.metrics) {
          if (!s.first_token_seen)
            spec_.metrics->observe_time_to_first_token(std::chrono::duration<double>(e.emitted_at - spec_.submitted_at).count());
          else
            spec_.metrics->observe_inter_token_latency(std::chrono::duration<double>(e.emitted_at - s.last_token_at).count(), 1);
        }
        s.first_token_seen = true;
        s.last_token_at = e.emitted_at;
      }
      if (e.finish) {
        s.finish = e.finish;
        s.error = e.error;
      }
    }
    s.tokens += new_tokens;
    if (s.finish && spec_.metrics) {
      spec_.metrics->record_attention_kernel(s.usage.attention_kernel);
      if (s.usage.attention_density) spec_.metrics->observe_attention_density(s.usage.attention_config, *s.usage.attention_density);
    }
    for (TokenEvent& e : events) s.pending.push_back(std::move(e));
  }
}

ResponseProgress GenerationJob::poll() {
  ResponseProgress progress;
  if (ended_) return progress;
  take_events();
  if (!spec_.stream) {
    if (!all_finished()) return progress;
    ended_ = true;
    return full_response();
  }
  if (!head_sent_) {
    head_sent_ = true;
    HttpResponse head;
    head.content_type = "text/event-stream";
    progress.stream_head = std::move(head);
  }
  progress.stream_bytes = stream_frames();
  if (all_finished()) {
    // The usage chunk: no choices, the usage of the whole request.
    if (spec_.include_usage) {
      const bool completions = spec_.endpoint == Endpoint::kCompletions;
      progress.stream_bytes += sse_event(completions ? completion_json({}, usage()) : chat_json(/*chunk=*/true, {}, usage()));
    }
    progress.stream_bytes += sse_done();
    progress.stream_end = true;
    ended_ = true;
  }
  return progress;
}

Usage GenerationJob::usage() const {
  Usage usage;
  std::vector<bool> prompt_counted(spec_.prompts.size(), false);
  for (std::size_t i = 0; i < spec_.choices.size(); ++i) {
    const ChoiceState& s = states_[i];
    usage.completion_tokens += std::max(s.usage.completion_tokens, s.tokens);
    const int p = spec_.choices[i].prompt_index;
    if (prompt_counted[p]) continue;  // OpenAI counts each prompt once, however many choices
    prompt_counted[p] = true;
    usage.prompt_tokens += static_cast<int>(spec_.prompts[p].ids.size());
    usage.cached_tokens += s.usage.cached_prompt_tokens;
    if (usage.attention_kernel.empty()) usage.attention_kernel = s.usage.attention_kernel;
  }
  // masked: the choices' densities and errors, averaged over the choices that report one.
  double density_sum = 0, error_sum = 0;
  int densities = 0, errors = 0;
  for (const ChoiceState& s : states_) {
    if (s.usage.attention_density) {
      density_sum += *s.usage.attention_density;
      ++densities;
    }
    if (s.usage.attention_output_error) {
      error_sum += *s.usage.attention_output_error;
      ++errors;
    }
    if (s.usage.attention_seed && !usage.attention_seed) usage.attention_seed = s.usage.attention_seed;
  }
  if (densities > 0) usage.attention_density = density_sum / densities;
  if (errors > 0) usage.attention_output_error = error_sum / errors;
  return usage;
}

AccessInfo GenerationJob::access_info() const {
  const Usage totals = usage();
  return {totals.prompt_tokens, totals.completion_tokens};
}

CompletionChoice GenerationJob::completion_choice(std::size_t i, bool echo, bool finishing) {
  ChoiceState& s = states_[i];
  const JobPrompt& prompt = spec_.prompts[spec_.choices[i].prompt_index];
  CompletionChoice choice;
  choice.index = spec_.choices[i].index;
  const std::string text = concat_text(s.pending);
  choice.text = echo ? prompt.text + text : text;
  if (spec_.logprobs >= 0) {
    std::vector<CompletionTokenLogprob>& logprobs = choice.logprobs.emplace();
    if (echo) append_prompt_logprobs(*spec_.engine, prompt.ids, s.usage.prompt_logprobs.get(), &logprobs);
    append_completion_logprobs(*spec_.engine, s.pending, &s.text_offset, &logprobs);
  }
  if (finishing) choice.finish_reason = openai_finish_reason(*s.finish);
  s.pending.clear();
  return choice;
}

// `whole`: the assistant's message of the body. Otherwise a chunk's delta: content only when
// there is text or a token to show, logprobs only for tokens.
ChatChoice GenerationJob::chat_choice(std::size_t i, bool whole, bool finishing) {
  ChoiceState& s = states_[i];
  ChatChoice choice;
  choice.index = spec_.choices[i].index;
  const std::string text = concat_text(s.pending);
  const bool tokens = has_tokens(s.pending);
  if (whole) choice.role = "assistant";
  if (whole || !text.empty() || (tokens && spec_.logprobs >= 0)) choice.content = text;
  if (spec_.logprobs >= 0 && (whole || tokens)) choice.logprobs = chat_logprobs(*spec_.engine, s.pending);
  if (finishing) choice.finish_reason = openai_finish_reason(*s.finish);
  s.pending.clear();
  return choice;
}

std::string GenerationJob::completion_json(std::vector<CompletionChoice> choices, std::optional<Usage> usage) const {
  return to_json(Completion{spec_.header, std::move(choices), std::move(usage)},
                 {.null_usage_when_absent = spec_.include_usage});
}

std::string GenerationJob::chat_json(bool chunk, std::vector<ChatChoice> choices, std::optional<Usage> usage) const {
  return to_json(ChatCompletion{chunk, spec_.header, std::move(choices), std::move(usage)},
                 {.null_usage_when_absent = spec_.include_usage});
}

ResponseProgress GenerationJob::full_response() {
  ResponseProgress progress;
  for (const ChoiceState& s : states_) {
    if (s.finish == FinishReason::kError) {
      progress.full = error_response(api_error_from_status(Status::internal(failure_message(s.error))));
      return progress;
    }
  }
  HttpResponse response;
  const Usage totals = usage();
  if (spec_.endpoint == Endpoint::kCompletions) {
    std::vector<CompletionChoice> choices;
    for (std::size_t i = 0; i < states_.size(); ++i) choices.push_back(completion_choice(i, spec_.echo, /*finishing=*/true));
    response.body = completion_json(std::move(choices), totals);
  } else {
    std::vector<ChatChoice> choices;
    for (std::size_t i = 0; i < states_.size(); ++i) choices.push_back(chat_choice(i, /*whole=*/true, /*finishing=*/true));
    response.body = chat_json(/*chunk=*/false, std::move(choices), totals);
  }
  response.access = {totals.prompt_tokens, totals.completion_tokens};
  progress.full = std::move(response);
  return progress;
}

std::string GenerationJob::stream_frames() {
  std::string frames;
  for (std::size_t i = 0; i < states_.size(); ++i) {
    ChoiceState& s = states_[i];
    // Echoed prompt scores exist once the prompt is computed: open the choice only then.
    if (!s.opened && spec_.endpoint == Endpoint::kCompletions && spec_.echo && spec_.logprobs >= 0 &&
        !s.usage.prompt_logprobs && !s.finish)
      continue;
    const bool opening = !s.opened;
    s.opened = true;
    const bool finishing = s.finish && !s.closed;
    if (!opening && s.pending.empty() && !finishing) continue;
    if (finishing && s.finish == FinishReason::kError) frames += error_frame(failure_message(s.error));
    // A token whose text is still held back (part of a UTF-8 character) gives no chunk
    // unless its logprobs are wanted.
    const bool quiet = concat_text(s.pending).empty() && !(has_tokens(s.pending) && spec_.logprobs >= 0) && !finishing;

    if (spec_.endpoint == Endpoint::kCompletions) {
      const bool echo_now = opening && spec_.echo;
      if (quiet && !echo_now) {
        s.pending.clear();
        continue;
      }
      frames += sse_event(completion_json({completion_choice(i, echo_now, finishing)}, std::nullopt));
    } else {
      // OpenAI's first chunk of a choice carries the role and empty content.
      if (opening) {
        ChatChoice first;
        first.index = spec_.choices[i].index;
        first.role = "assistant";
        first.content = "";
        frames += sse_event(chat_json(/*chunk=*/true, {std::move(first)}, std::nullopt));
      }
      if (quiet) {
        s.pending.clear();
        continue;
      }
      frames += sse_event(chat_json(/*chunk=*/true, {chat_choice(i, /*whole=*/false, finishing)}, std::nullopt));
    }
    if (finishing) s.closed = true;
  }
  return frames;
}

}  // namespace hotswap::server
