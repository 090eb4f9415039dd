#include "handlers/completions.h"

#include <algorithm>
#include <ctime>
#include <memory>
#include <optional>
#include <variant>

#include <spdlog/spdlog.h>

#include "api/json_codec.h"
#include "api/status_to_http.h"
#include "engine/attention_choice.h"
#include "handlers/generation_job.h"
#include "handlers/health.h"

namespace hotswap::server {
namespace {

using Clock = std::chrono::steady_clock;

// The codec's limits with the engine's max_new_tokens as the bound of max_tokens.
CodecLimits codec_limits(const ServerConfig& config) {
  CodecLimits limits = config.limits.codec;
  limits.max_tokens = config.engine.max_new_tokens;
  return limits;
}

// Everything both endpoints take from SamplingFields, resolved against the defaults.
struct Common {
  SamplingParams sampling;
  StopConditions stop;           // max_tokens filled per endpoint
  std::optional<int> max_tokens;
  AttentionChoice attention;
  std::string adapter;
  bool adapter_from_model = false;  // the adapter was named by `model` (vLLM style)
  int n = 1;
  bool stream = false;
  bool include_usage = false;
};

HttpResponse bad_request(const std::string& param, const std::string& message, const std::string& code = "invalid_value") {
  return error_response(invalid_field(param, message, code));
}

std::optional<HttpResponse> refuse_unless_ready(const HandlerContext& ctx) {
  switch (ctx.state->phase()) {
    case Phase::kReady: return std::nullopt;
    case Phase::kLoading:
      return error_response(api_error_from_status(Status::unavailable("the model is still loading; retry when GET /ready returns 200")),
                            ctx.config->retry_after_s);
    case Phase::kDraining:
      return error_response(api_error_from_status(Status::unavailable("the server is shutting down and accepts no new requests")),
                            ctx.config->retry_after_s);
  }
  return std::nullopt;
}

std::optional<HttpResponse> read_common(const HandlerContext& ctx, const Engine& engine, const std::string& model,
                                        const v1::SamplingFields& f, Common* out) {
  const SamplingDefaults& d = ctx.config->defaults;
  out->sampling.temperature = f.has_temperature() ? f.temperature() : d.temperature;
  out->sampling.top_p = f.has_top_p() ? f.top_p() : d.top_p;
  out->sampling.top_k = f.has_top_k() ? f.top_k() : d.top_k;
  out->sampling.min_p = f.has_min_p() ? f.min_p() : d.min_p;
  out->sampling.repetition_penalty = f.has_repetition_penalty() ? f.repetition_penalty() : d.repetition_penalty;
  out->sampling.presence_penalty = f.has_presence_penalty() ? f.presence_penalty() : 0.0f;
  out->sampling.frequency_penalty = f.has_frequency_penalty() ? f.frequency_penalty() : 0.0f;
  if (f.has_seed()) out->sampling.seed = f.seed();
  out->stop.stop_strings.assign(f.stop().begin(), f.stop().end());
  out->stop.ignore_eos = f.ignore_eos();
  out->n = f.has_n() ? f.n() : 1;
  out->stream = f.stream();
  out->include_usage = f.stream() && f.has_stream_options() && f.stream_options().include_usage();

  if (f.has_max_tokens()) out->max_tokens = f.max_tokens();  // the codec bounds it by max_new_tokens

  if (f.has_attention()) {
    std::string error;
    if (!parse_attention_choice(f.attention(), &out->attention, &error))
      return bad_request("attention", error);  // the message names the attention field itself
  }

  // `model` names the base model, or an adapter (vLLM style); `adapter` names one directly.
  const std::string base = served_model_name(ctx);
  const bool names_base = model.empty() || model == base || model == engine.model_info().id;
  out->adapter = f.adapter();
  if (!names_base) {
    if (!out->adapter.empty() && out->adapter != model)
      return bad_request("adapter", "model names adapter '" + model + "' but adapter is '" + out->adapter + "'; give one");
    out->adapter = model;
    out->adapter_from_model = true;
  }
  return std::nullopt;
}

std::optional<HttpResponse> check_token_ids(const Engine& engine, const std::vector<int32_t>& ids, const std::string& param) {
  const int vocab = engine.model_info().vocab_size;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (vocab > 0 && ids[i] >= vocab)
      return bad_request(param, param + "[" + std::to_string(i) + "] is token id " + std::to_string(ids[i]) +
                                    "; the model's vocabulary has ids 0.." + std::to_string(vocab - 1));
  }
  return std::nullopt;
}

// Submits one engine request per choice. On any refusal, cancels the ones already queued.
std::variant<std::vector<JobChoice>, HttpResponse> submit_all(const HandlerContext& ctx, Engine& engine, const HttpRequest& http,
                                                             const Common& common, const std::vector<JobPrompt>& prompts,
                                                             int max_tokens_default, int top_logprobs, bool echo) {
  std::vector<JobChoice> choices;
  auto give_up = [&](const Status& status) -> HttpResponse {
    for (JobChoice& c : choices) c.stream->cancel();
    ApiError error = api_error_from_status(status);
    if (status.code() == StatusCode::kNotFound && common.adapter_from_model) {
      error.code = "model_not_found";
      error.param = "model";
      error.message = "model '" + common.adapter + "' does not exist: it is neither the base model '" +
                      served_model_name(ctx) + "' nor a loaded adapter (" + status.message() + ")";
    }
    // The engine resolves the attention choice against the adapter (e.g. a masker that needs
    // an adapter the request does not have): its messages start with "attention".
    if (status.code() == StatusCode::kInvalidArgument && status.message().starts_with("attention"))
      error.param = "attention";
    if (error.http_status >= 500)
      spdlog::error("event=submit_failed id={} status={} error=\"{}\"", http.request_id, error.http_status, status.message());
    return error_response(error, ctx.config->retry_after_s);
  };
  for (std::size_t p = 0; p < prompts.size(); ++p) {
    for (int i = 0; i < common.n; ++i) {
      GenerateRequest request;
      const int index = static_cast<int>(p) * common.n + i;
      request.request_id = http.request_id + "-" + std::to_string(index);
      request.prompt_ids = prompts[p].ids;
      request.sampling = common.sampling;
      // n > 1 with a seed: distinct but reproducible choices; choice 0 uses the seed itself.
      if (common.sampling.seed) request.sampling.seed = *common.sampling.seed + static_cast<uint64_t>(i);
      request.stop = common.stop;
      request.stop.max_tokens = common.max_tokens.value_or(max_tokens_default);
      request.attention = common.attention;
      request.adapter = common.adapter;
      request.top_logprobs = top_logprobs;
      request.prompt_logprobs = echo && top_logprobs >= 0;  // echo + logprobs scores the prompt (OpenAI's legacy completions)
      Result<std::shared_ptr<TokenStream>> submitted = engine.submit(std::move(request));
      if (!submitted) return give_up(submitted.status());
      ctx.state->track(submitted.value());
      choices.push_back({index, static_cast<int>(p), submitted.value()});
    }
  }
  return choices;
}

HandlerResult make_job(const HandlerContext& ctx, Engine& engine, const HttpRequest& http, Endpoint endpoint, const Common& common,
                       std::vector<JobPrompt> prompts, int max_tokens_default, int logprobs, bool echo) {
  const Clock::time_point submitted_at = Clock::now();
  auto submitted = submit_all(ctx, engine, http, common, prompts, max_tokens_default, logprobs, echo);
  if (auto* error = std::get_if<HttpResponse>(&submitted)) return std::move(*error);
  JobSpec spec;
  spec.endpoint = endpoint;
  spec.id = (endpoint == Endpoint::kCompletions ? "cmpl-" : "chatcmpl-") + http.request_id;
  spec.created = static_cast<int64_t>(std::time(nullptr));
  spec.model = common.adapter_from_model ? common.adapter : served_model_name(ctx);
  spec.stream = common.stream;
  spec.include_usage = common.include_usage;
  spec.echo = echo;
  spec.logprobs = logprobs;
  spec.prompts = std::move(prompts);
  spec.choices = std::move(std::get<std::vector<JobChoice>>(submitted));
  spec.engine = &engine;
  spec.metrics = ctx.metrics;
  spec.submitted_at = submitted_at;
  return std::shared_ptr<AsyncResponse>(std::make_shared<GenerationJob>(std::move(spec)));
}

}  // namespace

HandlerResult handle_completions(const HandlerContext& ctx, const HttpRequest& http) {
  if (auto refused = refuse_unless_ready(ctx)) return std::move(*refused);
  v1::CompletionRequest request;
  if (auto error = parse_completion_request(http.body, codec_limits(*ctx.config), &request))
    return error_response(invalid_field(error->param, error->message, error->code));
  Engine& engine = *ctx.state->engine();

  Common common;
  if (auto error = read_common(ctx, engine, request.model(), request.sampling(), &common)) return std::move(*error);

  std::vector<JobPrompt> prompts;
  const bool many = request.prompts_size() > 1;
  for (int p = 0; p < request.prompts_size(); ++p) {
    const v1::Prompt& prompt = request.prompts(p);
    const std::string param = many ? "prompt[" + std::to_string(p) + "]" : "prompt";
    JobPrompt job_prompt;
    if (prompt.has_token_ids()) {
      job_prompt.ids.assign(prompt.token_ids().ids().begin(), prompt.token_ids().ids().end());
      if (auto error = check_token_ids(engine, job_prompt.ids, param)) return std::move(*error);
      job_prompt.text = engine.decode(job_prompt.ids, /*skip_special_tokens=*/false);
    } else {
      job_prompt.text = prompt.text();
      job_prompt.ids = engine.encode(prompt.text(), /*add_special_tokens=*/true);
    }
    if (job_prompt.ids.empty()) return bad_request(param, param + " is empty: it has no tokens");
    prompts.push_back(std::move(job_prompt));
  }
  const int max_tokens_default = std::min(ctx.config->defaults.max_tokens, ctx.config->engine.max_new_tokens);
  const int logprobs = request.has_logprobs() ? request.logprobs() : -1;
  if (common.max_tokens == 0 && !(request.echo() && logprobs >= 0))
    return bad_request("max_tokens", "max_tokens must be an integer between 1 and " +
                                         std::to_string(std::min(ctx.config->engine.max_new_tokens, 1 << 30)) +
                                         " (the server's max_new_tokens), got 0; 0 only scores the prompt and needs "
                                         "echo: true with logprobs");
  return make_job(ctx, engine, http, Endpoint::kCompletions, common, std::move(prompts), max_tokens_default, logprobs,
                  request.echo());
}

HandlerResult handle_chat_completions(const HandlerContext& ctx, const HttpRequest& http) {
  if (auto refused = refuse_unless_ready(ctx)) return std::move(*refused);
  v1::ChatCompletionRequest request;
  if (auto error = parse_chat_request(http.body, codec_limits(*ctx.config), &request))
    return error_response(invalid_field(error->param, error->message, error->code));
  Engine& engine = *ctx.state->engine();

  Common common;
  if (auto error = read_common(ctx, engine, request.model(), request.sampling(), &common)) return std::move(*error);

  if (engine.model_info().chat_template.empty())
    return bad_request("messages", "model '" + served_model_name(ctx) +
                                       "' has no chat template (tokenizer_config.json has no chat_template); "
                                       "use /v1/completions with a plain prompt",
                       "no_chat_template");
  std::vector<ChatMessage> messages;
  for (const v1::ChatMessageIn& m : request.messages()) messages.push_back({m.role(), m.content()});
  Result<std::string> rendered = engine.render_chat(messages, /*add_generation_prompt=*/true);
  if (!rendered) {
    ApiError error = api_error_from_status(rendered.status());
    if (error.http_status == 400) {
      error.param = "messages";
      error.message = "messages: " + error.message;
    }
    return error_response(error, ctx.config->retry_after_s);
  }
  JobPrompt prompt;
  prompt.text = rendered.value();
  // The template writes the special tokens (BOS included) itself.
  prompt.ids = engine.encode(prompt.text, /*add_special_tokens=*/false);
  if (prompt.ids.empty()) return bad_request("messages", "messages rendered to an empty prompt");

  // OpenAI's chat default is "as long as the context allows", bounded by max_new_tokens.
  const int context_left = engine.model_info().max_position_embeddings - static_cast<int>(prompt.ids.size());
  const int max_tokens_default = std::max(1, std::min(ctx.config->engine.max_new_tokens, context_left));
  const int logprobs = request.logprobs() ? (request.has_top_logprobs() ? request.top_logprobs() : 0) : -1;
  std::vector<JobPrompt> prompts;
  prompts.push_back(std::move(prompt));
  return make_job(ctx, engine, http, Endpoint::kChat, common, std::move(prompts), max_tokens_default, logprobs, /*echo=*/false);
}

}  // namespace hotswap::server
