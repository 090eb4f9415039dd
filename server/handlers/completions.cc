#include "handlers/completions.h"

#include <algorithm>
#include <ctime>
#include <memory>
#include <optional>
#include <variant>

#include <spdlog/spdlog.h>

#include "api/request_codec.h"
#include "api/status_to_http.h"
#include "engine/attention_choice.h"
#include "handlers/generation_job.h"
#include "handlers/health.h"

namespace hotswap::server {
namespace {

using Clock = std::chrono::steady_clock;

// What the codec needs from the configuration: its limits, with the engine's max_new_tokens
// bounding max_tokens (and the completions default), the defaults, and the engine's reading
// of `attention`.
CodecOptions codec_options(const ServerConfig& config) {
  CodecOptions options;
  options.limits = config.limits.codec;
  options.limits.max_tokens = config.engine.max_new_tokens;
  options.defaults = config.defaults;
  options.defaults.max_tokens = std::min(config.defaults.max_tokens, config.engine.max_new_tokens);
  options.parse_attention = parse_attention_choice;
  return options;
}

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

// A parsed request with what the handler resolved: the adapter, and whether `model` named it.
struct Generation {
  GenerationFields fields;
  bool adapter_from_model = false;
};

// `model` names the base model, or an adapter (vLLM style); `adapter` names one directly.
std::variant<Generation, HttpResponse> resolve_adapter(const HandlerContext& ctx, const Engine& engine,
                                                       GenerationFields fields) {
  Generation g{std::move(fields)};
  const std::string& model = g.fields.model;
  if (model.empty() || model == ctx.config->served_model_name || model == engine.model_info().id) return g;
  if (!g.fields.adapter.empty() && g.fields.adapter != model)
    return bad_request("adapter", "model names adapter '" + model + "' but adapter is '" + g.fields.adapter + "'; give one");
  g.fields.adapter = model;
  g.adapter_from_model = true;
  return g;
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
                                                             const Generation& g, const std::vector<JobPrompt>& prompts,
                                                             int top_logprobs, bool echo) {
  std::vector<JobChoice> choices;
  auto give_up = [&](const Status& status) -> HttpResponse {
    for (JobChoice& c : choices) c.stream->cancel();
    ApiError error = api_error_from_status(status);
    if (status.code() == StatusCode::kNotFound && g.adapter_from_model) {
      error.code = "model_not_found";
      error.param = "model";
      error.message = "model '" + g.fields.adapter + "' does not exist: it is neither the base model '" +
                      ctx.config->served_model_name + "' nor a loaded adapter (" + status.message() + ")";
    }
    // The engine resolves the attention choice against the adapter (e.g. a masker that needs
    // an adapter the request does not have): its messages start with "attention".
    if (status.code() == StatusCode::kInvalidArgument && status.message().starts_with("attention"))
      error.param = "attention";
    if (error.http_status >= 500)
      spdlog::error("event=submit_failed id={} status={} error=\"{}\"", http.request_id, error.http_status, status.message());
    return error_response(error, ctx.config->retry_after_s);
  };
  const GenerationFields& f = g.fields;
  for (std::size_t p = 0; p < prompts.size(); ++p) {
    for (int i = 0; i < f.n; ++i) {
      GenerateRequest request;
      const int index = static_cast<int>(p) * f.n + i;
      request.request_id = http.request_id + "-" + std::to_string(index);
      request.prompt_ids = prompts[p].ids;
      request.sampling = f.sampling;
      // n > 1 with a seed: distinct but reproducible choices; choice 0 uses the seed itself.
      if (f.sampling.seed) request.sampling.seed = *f.sampling.seed + static_cast<uint64_t>(i);
      request.stop = f.stop;
      request.attention = f.attention;
      request.adapter = f.adapter;
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

HandlerResult make_job(const HandlerContext& ctx, Engine& engine, const HttpRequest& http, Endpoint endpoint,
                       const Generation& g, std::vector<JobPrompt> prompts, int logprobs, bool echo) {
  const Clock::time_point submitted_at = Clock::now();
  auto submitted = submit_all(ctx, engine, http, g, prompts, logprobs, echo);
  if (auto* error = std::get_if<HttpResponse>(&submitted)) return std::move(*error);
  JobSpec spec;
  spec.endpoint = endpoint;
  spec.header.id = (endpoint == Endpoint::kCompletions ? "cmpl-" : "chatcmpl-") + http.request_id;
  spec.header.created = static_cast<int64_t>(std::time(nullptr));
  spec.header.model = g.adapter_from_model ? g.fields.adapter : ctx.config->served_model_name;
  spec.stream = g.fields.stream;
  spec.include_usage = g.fields.include_usage;
  spec.echo = echo;
  spec.logprobs = logprobs;
  spec.prompts = std::move(prompts);
  spec.choices = std::move(std::get<std::vector<JobChoice>>(submitted));
  spec.engine = &engine;
  spec.metrics = ctx.metrics;
  spec.submitted_at = submitted_at;
  return std::shared_ptr<AsyncResponse>(std::make_shared<GenerationJob>(std::move(spec)));
}

HttpResponse codec_error(const RequestError& error) {
  return error_response(invalid_field(error.param, error.message, error.code));
}

}  // namespace

HandlerResult handle_completions(const HandlerContext& ctx, const HttpRequest& http) {
  if (auto refused = refuse_unless_ready(ctx)) return std::move(*refused);
  CompletionRequest request;
  if (auto error = parse_completion_request(http.body, codec_options(*ctx.config), &request)) return codec_error(*error);
  Engine& engine = *ctx.state->engine();
  auto resolved = resolve_adapter(ctx, engine, std::move(request.fields));
  if (auto* refused = std::get_if<HttpResponse>(&resolved)) return std::move(*refused);

  std::vector<JobPrompt> prompts;
  const bool many = request.prompts.size() > 1;
  for (std::size_t p = 0; p < request.prompts.size(); ++p) {
    Prompt& prompt = request.prompts[p];
    const std::string param = many ? "prompt[" + std::to_string(p) + "]" : "prompt";
    JobPrompt job_prompt;
    if (prompt.is_tokens) {
      job_prompt.ids = std::move(prompt.token_ids);
      if (auto error = check_token_ids(engine, job_prompt.ids, param)) return std::move(*error);
      job_prompt.text = engine.decode(job_prompt.ids, /*skip_special_tokens=*/false);
    } else {
      job_prompt.ids = engine.encode(prompt.text, /*add_special_tokens=*/true);
      job_prompt.text = std::move(prompt.text);
    }
    if (job_prompt.ids.empty()) return bad_request(param, param + " is empty: it has no tokens");
    prompts.push_back(std::move(job_prompt));
  }
  return make_job(ctx, engine, http, Endpoint::kCompletions, std::get<Generation>(resolved), std::move(prompts),
                  request.logprobs, request.echo);
}

HandlerResult handle_chat_completions(const HandlerContext& ctx, const HttpRequest& http) {
  if (auto refused = refuse_unless_ready(ctx)) return std::move(*refused);
  ChatRequest request;
  if (auto error = parse_chat_request(http.body, codec_options(*ctx.config), &request)) return codec_error(*error);
  Engine& engine = *ctx.state->engine();
  auto resolved = resolve_adapter(ctx, engine, std::move(request.fields));
  if (auto* refused = std::get_if<HttpResponse>(&resolved)) return std::move(*refused);
  Generation& g = std::get<Generation>(resolved);

  if (engine.model_info().chat_template.empty())
    return bad_request("messages", "model '" + ctx.config->served_model_name +
                                       "' has no chat template (tokenizer_config.json has no chat_template); "
                                       "use /v1/completions with a plain prompt",
                       "no_chat_template");
  std::vector<ChatMessage> messages;
  for (ChatMessageIn& m : request.messages) messages.push_back({std::move(m.role), std::move(m.content)});
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
  if (!g.fields.max_tokens_given) {
    const int context_left = engine.model_info().max_position_embeddings - static_cast<int>(prompt.ids.size());
    g.fields.stop.max_tokens = std::max(1, std::min(ctx.config->engine.max_new_tokens, context_left));
  }
  std::vector<JobPrompt> prompts;
  prompts.push_back(std::move(prompt));
  return make_job(ctx, engine, http, Endpoint::kChat, g, std::move(prompts), request.logprobs, /*echo=*/false);
}

}  // namespace hotswap::server
