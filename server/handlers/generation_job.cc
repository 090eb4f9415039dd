#include "handlers/generation_job.h"

#include <optional>
#include <utility>

#include "api/json_codec.h"
#include "api/status_to_http.h"
#include "http/sse.h"
#include "hotswap/v1/chat.pb.h"
#include "hotswap/v1/completions.pb.h"

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
  std::vector<TokenEvent> fresh;  // drained this poll, not yet turned into output
  std::string text;               // non-streaming: the whole completion
  v1::CompletionLogprobs completion_logprobs;
  v1::ChatLogprobs chat_logprobs;
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

void add_bytes(const std::string& text, google::protobuf::RepeatedField<int32_t>* bytes) {
  for (unsigned char c : text) bytes->Add(c);
}

// Entries for echoed prompt tokens: the engine's prompt scores (GenerateRequest::
// prompt_logprobs; `scores[j - 1]` scores token j), null for the first token, which nothing
// predicts, and for every token when the scores are absent.
void append_prompt_logprobs(const Engine& engine, const std::vector<int32_t>& ids,
                            const std::vector<PromptLogprob>* scores, int* offset, v1::CompletionLogprobs* out) {
  for (size_t j = 0; j < ids.size(); ++j) {
    const std::string text = token_text(engine, ids[j]);
    out->add_tokens(text);
    const PromptLogprob* score = (scores != nullptr && j > 0 && j - 1 < scores->size()) ? &(*scores)[j - 1] : nullptr;
    if (score != nullptr) {
      out->add_token_logprobs()->set_value(score->logprob);
      auto* top = out->add_top_logprobs()->mutable_logprobs();
      for (const TokenLogprob& alt : score->top_logprobs) (*top)[token_text(engine, alt.token_id)] = alt.logprob;
    } else {
      out->add_token_logprobs();
      out->add_top_logprobs()->set_is_null(true);
    }
    out->add_text_offset(*offset);
    *offset += static_cast<int>(text.size());
  }
}

void append_completion_logprobs(const Engine& engine, const std::vector<TokenEvent>& events, int* offset,
                                v1::CompletionLogprobs* out) {
  for (const TokenEvent& e : events) {
    if (e.token_id < 0) continue;
    const std::string text = token_text(engine, e.token_id);
    out->add_tokens(text);
    out->add_token_logprobs()->set_value(e.logprob);
    auto* top = out->add_top_logprobs()->mutable_logprobs();
    for (const TokenLogprob& alt : e.top_logprobs) (*top)[token_text(engine, alt.token_id)] = alt.logprob;
    out->add_text_offset(*offset);
    *offset += static_cast<int>(text.size());
  }
}

void append_chat_logprobs(const Engine& engine, const std::vector<TokenEvent>& events, v1::ChatLogprobs* out) {
  for (const TokenEvent& e : events) {
    if (e.token_id < 0) continue;
    v1::ChatTokenLogprob* entry = out->add_content();
    entry->set_token(token_text(engine, e.token_id));
    entry->set_logprob(e.logprob);
    add_bytes(entry->token(), entry->mutable_bytes());
    for (const TokenLogprob& alt : e.top_logprobs) {
      v1::ChatTopLogprob* top = entry->add_top_logprobs();
      top->set_token(token_text(engine, alt.token_id));
      top->set_logprob(alt.logprob);
      add_bytes(top->token(), top->mutable_bytes());
    }
  }
}

std::string concat_text(const std::vector<TokenEvent>& events) {
  std::string text;
  for (const TokenEvent& e : events) text += e.text;
  return text;
}

}  // namespace

void GenerationJob::fill_usage(const UsageTotals& totals, v1::Usage* usage) {
  usage->set_prompt_tokens(totals.prompt_tokens);
  usage->set_completion_tokens(totals.completion_tokens);
  usage->set_total_tokens(totals.prompt_tokens + totals.completion_tokens);
  usage->mutable_prompt_tokens_details()->set_cached_tokens(totals.cached_tokens);
  usage->set_attention_kernel(totals.attention_kernel);
  if (totals.densities > 0) usage->set_attention_density(totals.density_sum / totals.densities);
  if (totals.errors > 0) usage->set_attention_output_error(totals.error_sum / totals.errors);
  if (totals.attention_seed) usage->set_attention_seed(*totals.attention_seed);
}

namespace {

std::string error_frame(const std::string& message) {
  v1::ErrorBody body;
  body.mutable_error()->set_message(message);
  body.mutable_error()->set_type("server_error");
  body.mutable_error()->set_code("generation_failed");
  return sse_event(to_json(body));
}

}  // namespace

GenerationJob::GenerationJob(JobSpec spec) : spec_(std::move(spec)), states_(spec_.choices.size()) {
  for (std::size_t i = 0; i < spec_.choices.size(); ++i) {
    const JobPrompt& prompt = spec_.prompts[spec_.choices[i].prompt_index];
    // OpenAI's text_offset counts from the start of the prompt (echoed or not).
    states_[i].text_offset = spec_.echo ? 0 : static_cast<int>(prompt.text.size());
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
    if (spec_.stream) {
      for (TokenEvent& e : events) s.fresh.push_back(std::move(e));
      continue;
    }
    s.text += concat_text(events);
    if (spec_.logprobs >= 0) {
      if (spec_.endpoint == Endpoint::kCompletions)
        append_completion_logprobs(*spec_.engine, events, &s.text_offset, &s.completion_logprobs);
      else
        append_chat_logprobs(*spec_.engine, events, &s.chat_logprobs);
    }
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
    if (spec_.include_usage) progress.stream_bytes += usage_frame();
    progress.stream_bytes += sse_done();
    progress.stream_end = true;
    ended_ = true;
  }
  return progress;
}

GenerationJob::UsageTotals GenerationJob::usage_totals() const {
  UsageTotals totals;
  std::vector<bool> prompt_counted(spec_.prompts.size(), false);
  for (std::size_t i = 0; i < spec_.choices.size(); ++i) {
    const ChoiceState& s = states_[i];
    totals.completion_tokens += std::max(s.usage.completion_tokens, s.tokens);
    const int p = spec_.choices[i].prompt_index;
    if (prompt_counted[p]) continue;  // OpenAI counts each prompt once, however many choices
    prompt_counted[p] = true;
    totals.prompt_tokens += static_cast<int>(spec_.prompts[p].ids.size());
    totals.cached_tokens += s.usage.cached_prompt_tokens;
    if (totals.attention_kernel.empty()) totals.attention_kernel = s.usage.attention_kernel;
  }
  for (const ChoiceState& s : states_) {
    if (s.usage.attention_density) {
      totals.density_sum += *s.usage.attention_density;
      ++totals.densities;
    }
    if (s.usage.attention_output_error) {
      totals.error_sum += *s.usage.attention_output_error;
      ++totals.errors;
    }
    if (s.usage.attention_seed && !totals.attention_seed) totals.attention_seed = s.usage.attention_seed;
  }
  return totals;
}

AccessInfo GenerationJob::access_info() const {
  const UsageTotals totals = usage_totals();
  return {totals.prompt_tokens, totals.completion_tokens};
}

ResponseProgress GenerationJob::full_response() {
  ResponseProgress progress;
  for (const ChoiceState& s : states_) {
    if (s.finish == FinishReason::kError) {
      progress.full = error_response(api_error_from_status(
          Status::internal("generation failed: " + (s.error.empty() ? std::string("engine error") : s.error))));
      return progress;
    }
  }
  const UsageTotals totals = usage_totals();
  HttpResponse response;
  if (spec_.endpoint == Endpoint::kCompletions) {
    v1::Completion body;
    body.set_id(spec_.id);
    body.set_object("text_completion");
    body.set_created(spec_.created);
    body.set_model(spec_.model);
    for (std::size_t i = 0; i < states_.size(); ++i) {
      ChoiceState& s = states_[i];
      const JobPrompt& prompt = spec_.prompts[spec_.choices[i].prompt_index];
      v1::CompletionChoice* choice = body.add_choices();
      choice->set_index(spec_.choices[i].index);
      choice->set_text(spec_.echo ? prompt.text + s.text : s.text);
      choice->set_finish_reason(openai_finish_reason(*s.finish));
      if (spec_.logprobs >= 0) {
        v1::CompletionLogprobs* lp = choice->mutable_logprobs();
        if (spec_.echo) {
          int offset = 0;
          append_prompt_logprobs(*spec_.engine, prompt.ids, s.usage.prompt_logprobs.get(), &offset, lp);
        }
        lp->MergeFrom(s.completion_logprobs);
      }
    }
    fill_usage(totals, body.mutable_usage());
    response.body = to_json(body);
  } else {
    v1::ChatCompletion body;
    body.set_id(spec_.id);
    body.set_object("chat.completion");
    body.set_created(spec_.created);
    body.set_model(spec_.model);
    for (std::size_t i = 0; i < states_.size(); ++i) {
      ChoiceState& s = states_[i];
      v1::ChatChoice* choice = body.add_choices();
      choice->set_index(spec_.choices[i].index);
      choice->mutable_message()->set_role("assistant");
      choice->mutable_message()->set_content(s.text);
      choice->set_finish_reason(openai_finish_reason(*s.finish));
      if (spec_.logprobs >= 0) *choice->mutable_logprobs() = s.chat_logprobs;
    }
    fill_usage(totals, body.mutable_usage());
    response.body = to_json(body);
  }
  response.access = {totals.prompt_tokens, totals.completion_tokens};
  progress.full = std::move(response);
  return progress;
}

std::string GenerationJob::stream_frames() {
  std::string frames;
  const ChunkJsonOptions options{.null_usage_when_absent = spec_.include_usage};
  for (std::size_t i = 0; i < states_.size(); ++i) {
    ChoiceState& s = states_[i];
    const int index = spec_.choices[i].index;
    const JobPrompt& prompt = spec_.prompts[spec_.choices[i].prompt_index];
    // Echoed prompt scores exist once the prompt is computed: open the choice only then.
    if (!s.opened && spec_.endpoint == Endpoint::kCompletions && spec_.echo && spec_.logprobs >= 0 &&
        !s.usage.prompt_logprobs && !s.finish)
      continue;
    const bool opening = !s.opened;
    s.opened = true;
    const bool finishing = s.finish && !s.closed;
    if (!opening && s.fresh.empty() && !finishing) continue;
    const std::string text = concat_text(s.fresh);
    bool has_tokens = false;
    for (const TokenEvent& e : s.fresh) has_tokens |= e.token_id >= 0;
    if (finishing && s.finish == FinishReason::kError)
      frames += error_frame("generation failed: " + (s.error.empty() ? std::string("engine error") : s.error));

    if (spec_.endpoint == Endpoint::kCompletions) {
      const bool echo_now = opening && spec_.echo;
      // A token whose text is still held back (part of a UTF-8 character) gives no chunk
      // unless its logprobs are wanted.
      const bool show_tokens = has_tokens && spec_.logprobs >= 0;
      if (!echo_now && text.empty() && !show_tokens && !finishing) {
        s.fresh.clear();
        continue;
      }
      v1::Completion chunk;
      chunk.set_id(spec_.id);
      chunk.set_object("text_completion");
      chunk.set_created(spec_.created);
      chunk.set_model(spec_.model);
      v1::CompletionChoice* choice = chunk.add_choices();
      choice->set_index(index);
      choice->set_text(echo_now ? prompt.text + text : text);
      if (spec_.logprobs >= 0) {
        v1::CompletionLogprobs* lp = choice->mutable_logprobs();
        if (echo_now) {
          int offset = 0;
          append_prompt_logprobs(*spec_.engine, prompt.ids, s.usage.prompt_logprobs.get(), &offset, lp);
        }
        append_completion_logprobs(*spec_.engine, s.fresh, &s.text_offset, lp);
      }
      if (finishing) choice->set_finish_reason(openai_finish_reason(*s.finish));
      frames += sse_event(to_json(chunk, options));
    } else {
      v1::ChatCompletionChunk chunk;
      chunk.set_id(spec_.id);
      chunk.set_object("chat.completion.chunk");
      chunk.set_created(spec_.created);
      chunk.set_model(spec_.model);
      if (opening) {
        // OpenAI's first chunk of a choice carries the role and empty content.
        v1::ChatChunkChoice* first = chunk.add_choices();
        first->set_index(index);
        first->mutable_delta()->set_role("assistant");
        first->mutable_delta()->set_content("");
        frames += sse_event(to_json(chunk, options));
        chunk.clear_choices();
      }
      const bool show_tokens = has_tokens && spec_.logprobs >= 0;
      if (text.empty() && !show_tokens && !finishing) {
        s.fresh.clear();
        continue;
      }
      v1::ChatChunkChoice* choice = chunk.add_choices();
      choice->set_index(index);
      if (!text.empty() || show_tokens) choice->mutable_delta()->set_content(text);
      if (spec_.logprobs >= 0 && has_tokens) append_chat_logprobs(*spec_.engine, s.fresh, choice->mutable_logprobs());
      if (finishing) choice->set_finish_reason(openai_finish_reason(*s.finish));
      frames += sse_event(to_json(chunk, options));
    }
    s.fresh.clear();
    if (finishing) s.closed = true;
  }
  return frames;
}

std::string GenerationJob::usage_frame() {
  const UsageTotals totals = usage_totals();
  if (spec_.endpoint == Endpoint::kCompletions) {
    v1::Completion chunk;
    chunk.set_id(spec_.id);
    chunk.set_object("text_completion");
    chunk.set_created(spec_.created);
    chunk.set_model(spec_.model);
    fill_usage(totals, chunk.mutable_usage());
    return sse_event(to_json(chunk));
  }
  v1::ChatCompletionChunk chunk;
  chunk.set_id(spec_.id);
  chunk.set_object("chat.completion.chunk");
  chunk.set_created(spec_.created);
  chunk.set_model(spec_.model);
  fill_usage(totals, chunk.mutable_usage());
  return sse_event(to_json(chunk));
}

}  // namespace hotswap::server
