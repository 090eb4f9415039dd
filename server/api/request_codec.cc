#include "api/request_codec.h"

#include <algorithm>
#include <iterator>
#include <limits>
#include <utility>

#include <nlohmann/json.hpp>

namespace hotswap::server {
namespace {

using json = nlohmann::json;
namespace fields = request_fields;

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
// The upper bound of max_tokens, named in its message: "an integer between 1 and 4096 (the
// server's max_new_tokens)".
constexpr const char* kMaxTokensNote = "the server's max_new_tokens";

// What a parse carries besides the request: the attention text waits until every other field
// has been checked, so that the engine's judgement of it comes after the codec's.
struct Pending {
  std::optional<std::string> attention;
};

void read_stop(const Fields& f, const CodecLimits& limits, StopConditions* stop) {
  const json* v = f.get("stop");
  if (!v) return;
  auto add = [&](const json& item, const std::string& param) {
    if (!item.is_string()) reject_value(param, "a string", item);
    const std::string& text = item.get_ref<const std::string&>();
    if (text.empty()) reject(param, param + " must not be an empty string");
    if (static_cast<int>(text.size()) > limits.max_stop_bytes)
      reject(param, param + " is " + std::to_string(text.size()) + " bytes; the limit is " + std::to_string(limits.max_stop_bytes));
    stop->stop_strings.push_back(text);
  };
  if (v->is_string()) return add(*v, "stop");
  if (!v->is_array()) reject_value("stop", "a string or an array of strings", *v);
  if (static_cast<int>(v->size()) > limits.max_stop)
    reject("stop", "stop has " + std::to_string(v->size()) + " entries; at most " + std::to_string(limits.max_stop) + " are allowed");
  for (std::size_t i = 0; i < v->size(); ++i) add((*v)[i], "stop[" + std::to_string(i) + "]");
}

void read_seed(const Fields& f, SamplingParams* s) {
  const json* v = f.get("seed");
  if (!v) return;
  if (v->is_number_unsigned()) {
    s->seed = v->get<uint64_t>();
    return;
  }
  std::optional<int64_t> i = as_integer(*v);
  if (!i) reject_value("seed", "an integer", *v);
  s->seed = static_cast<uint64_t>(*i);  // negative seeds wrap: any integer is a valid seed
}

// `attention`: a name as given, or the object form as JSON text; the engine parses either.
void read_attention(const Fields& f, Pending* pending) {
  const json* v = f.get("attention");
  if (!v) return;
  if (v->is_string()) pending->attention = v->get<std::string>();
  else if (v->is_object()) pending->attention = dump(*v);
  else reject_value("attention", "a string (auto, eager, streaming, mixed, nsa) or an object", *v);
}

void reject_if_nonempty_object(const Fields& f, const char* key, const std::string& why) {
  const json* v = f.get(key);
  if (!v) return;
  if (!v->is_object()) reject_value(key, "an object", *v);
  if (!v->empty()) reject(key, std::string(key) + " is not supported: " + why, "unsupported_field");
}

// The fields both endpoints share, over the defaults already in *g.
void read_generation_fields(const Fields& f, const CodecLimits& limits, bool chat, GenerationFields* g,
                            Pending* pending) {
  const FieldRange max_tokens = fields::kMaxTokens.with_bounds(1, limits.max_tokens);
  // Completions may ask for 0 tokens to score an echoed prompt (parse_completion checks echo
  // and logprobs); every other value keeps the 1..max range.
  const json* zero = chat ? nullptr : f.get("max_tokens");
  if (zero != nullptr && zero->is_number_integer() && zero->get<int64_t>() == 0) {
    g->stop.max_tokens = 0;
    g->max_tokens_given = true;
  } else if (auto v = f.number(max_tokens, kMaxTokensNote)) {
    g->stop.max_tokens = static_cast<int>(*v);
    g->max_tokens_given = true;
  }
  if (chat) {
    FieldRange completion_tokens = max_tokens;
    completion_tokens.name = "max_completion_tokens";
    if (auto v = f.number(completion_tokens, kMaxTokensNote)) {
      g->stop.max_tokens = static_cast<int>(*v);
      g->max_tokens_given = true;
    }
  }
  SamplingParams& s = g->sampling;
  if (auto v = f.number(fields::kTemperature)) s.temperature = static_cast<float>(*v);
  if (auto v = f.number(fields::kTopP)) s.top_p = static_cast<float>(*v);
  if (auto v = f.integer("n", 1, limits.max_n)) g->n = static_cast<int>(*v);
  read_stop(f, limits, &g->stop);
  if (auto v = f.number(fields::kPresencePenalty)) s.presence_penalty = static_cast<float>(*v);
  if (auto v = f.number(fields::kFrequencyPenalty)) s.frequency_penalty = static_cast<float>(*v);
  read_seed(f, &s);
  if (auto v = f.boolean("stream")) g->stream = *v;
  if (const json* so = f.get("stream_options")) {
    if (!so->is_object()) reject_value("stream_options", "an object", *so);
    Fields options(*so, "stream_options.");
    g->include_usage = options.boolean("include_usage").value_or(false);
  }
  g->include_usage = g->include_usage && g->stream;  // usage chunks exist only in streams
  // `user` is accepted and ignored, like any unknown field.
  if (auto v = f.number(fields::kTopK)) s.top_k = *v < 0 ? 0 : static_cast<int>(*v);  // negative = off
  if (auto v = f.number(fields::kMinP)) s.min_p = static_cast<float>(*v);
  if (auto v = f.number(fields::kRepetitionPenalty)) s.repetition_penalty = static_cast<float>(*v);
  if (auto v = f.boolean("ignore_eos")) g->stop.ignore_eos = *v;
  read_attention(f, pending);
  if (auto v = f.string("adapter")) g->adapter = *v;
  reject_if_nonempty_object(f, "logit_bias", "the engine has no logit bias");
}

// One completions prompt given as token ids.
void add_token_prompt(const json& ids, const std::string& param, CompletionRequest* out) {
  if (ids.empty()) reject(param, param + " must not be an empty array of token ids");
  Prompt& prompt = out->prompts.emplace_back();
  prompt.is_tokens = true;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    std::optional<int64_t> id = as_integer(ids[i]);
    if (!id || *id < 0 || *id > kInt32Max)
      reject_value(param + "[" + std::to_string(i) + "]", "a token id (an integer >= 0)", ids[i]);
    prompt.token_ids.push_back(static_cast<int32_t>(*id));
  }
}

void add_text_prompt(std::string text, CompletionRequest* out) { out->prompts.push_back({std::move(text), {}, false}); }

void read_prompt(const Fields& f, const CodecLimits& limits, CompletionRequest* out) {
  const json* v = f.get("prompt");
  if (!v) reject("prompt", "prompt is required", "missing_field");
  if (v->is_string()) return add_text_prompt(v->get<std::string>(), out);
  const char* expectation = "a string, an array of token ids, an array of strings or an array of token-id arrays";
  if (!v->is_array()) reject_value("prompt", expectation, *v);
  if (v->empty()) reject("prompt", "prompt must not be an empty array");
  const json& first = v->front();
  if (first.is_number()) return add_token_prompt(*v, "prompt", out);
  if (static_cast<int>(v->size()) > limits.max_prompts)
    reject("prompt", "prompt has " + std::to_string(v->size()) + " prompts; at most " + std::to_string(limits.max_prompts) +
                         " are allowed in one request");
  for (std::size_t i = 0; i < v->size(); ++i) {
    const json& item = (*v)[i];
    const std::string param = "prompt[" + std::to_string(i) + "]";
    if (first.is_string()) {
      if (!item.is_string()) reject_value(param, "a string like the other prompts", item);
      add_text_prompt(item.get<std::string>(), out);
    } else if (first.is_array()) {
      if (!item.is_array()) reject_value(param, "an array of token ids like the other prompts", item);
      add_token_prompt(item, param, out);
    } else {
      reject_value(param, "a string, a token id or an array of token ids", item);
    }
  }
}

void check_choices(const CodecLimits& limits, int num_prompts, int n) {
  if (num_prompts * n > limits.max_choices)
    reject("n", std::to_string(num_prompts) + " prompts x n=" + std::to_string(n) + " is " + std::to_string(num_prompts * n) +
                    " choices; at most " + std::to_string(limits.max_choices) + " are allowed");
}

// Last, once every field has passed the codec: the engine's reading of `attention`.
void resolve_attention(const CodecOptions& options, const Pending& pending, GenerationFields* g) {
  if (!pending.attention) return;
  std::string error;
  if (!options.parse_attention(*pending.attention, &g->attention, &error))
    reject("attention", error);  // the message names the attention field itself
}

void parse_completion(const json& root, const CodecOptions& options, CompletionRequest* out) {
  const CodecLimits& limits = options.limits;
  Fields f(root, "");
  Pending pending;
  out->fields.model = f.string("model").value_or("");
  read_prompt(f, limits, out);
  read_generation_fields(f, limits, /*chat=*/false, &out->fields, &pending);
  if (auto v = f.integer("logprobs", 0, limits.max_logprobs)) out->logprobs = static_cast<int>(*v);
  if (auto v = f.boolean("echo")) out->echo = *v;
  const int n = out->fields.n;
  if (auto best_of = f.integer("best_of", 1, kInt32Max); best_of && *best_of != n)
    reject("best_of", "best_of is not supported (it must equal n); use n for several choices", "unsupported_field");
  if (auto suffix = f.string("suffix"); suffix && !suffix->empty())
    reject("suffix", "suffix is not supported (no insertion mode)", "unsupported_field");
  check_choices(limits, static_cast<int>(out->prompts.size()), n);
  resolve_attention(options, pending, &out->fields);
  if (out->fields.stop.max_tokens == 0 && !(out->echo && out->logprobs >= 0))
    reject("max_tokens", "max_tokens must be " + fields::kMaxTokens.with_bounds(1, limits.max_tokens).expectation() + " (" +
                             kMaxTokensNote + "), got 0; 0 only scores the prompt and needs echo: true with logprobs");
}

const char* const kRoles[] = {"system", "developer", "user", "assistant", "tool", "function", "ipython"};

std::string read_content(const json& message, const std::string& prefix, const std::string& role) {
  auto it = message.find("content");
  const std::string param = prefix + "content";
  if (it == message.end() || it->is_null()) {
    if (role == "assistant") return "";  // an assistant turn that only made tool calls
    reject(param, param + " is required", "missing_field");
  }
  if (it->is_string()) return it->get<std::string>();
  if (!it->is_array()) reject_value(param, "a string or an array of content parts", *it);
  std::string text;
  for (std::size_t i = 0; i < it->size(); ++i) {
    const json& part = (*it)[i];
    const std::string part_name = param + "[" + std::to_string(i) + "]";
    if (!part.is_object()) reject_value(part_name, "an object {\"type\":\"text\",\"text\":...}", part);
    Fields pf(part, part_name + ".");
    const std::string type = pf.string("type").value_or("");
    if (type != "text")
      reject(part_name + ".type", part_name + ".type must be \"text\" (the only supported content part), got \"" + type + "\"",
             "unsupported_field");
    std::optional<std::string> part_text = pf.string("text");
    if (!part_text) reject(part_name + ".text", part_name + ".text is required", "missing_field");
    text += *part_text;
  }
  return text;
}

void read_messages(const Fields& f, const CodecLimits& limits, ChatRequest* out) {
  const json* v = f.get("messages");
  if (!v) reject("messages", "messages is required", "missing_field");
  if (!v->is_array()) reject_value("messages", "a non-empty array of messages", *v);
  if (v->empty()) reject("messages", "messages must be a non-empty array");
  if (static_cast<int>(v->size()) > limits.max_messages)
    reject("messages", "messages has " + std::to_string(v->size()) + " entries; at most " + std::to_string(limits.max_messages));
  for (std::size_t i = 0; i < v->size(); ++i) {
    const json& m = (*v)[i];
    const std::string prefix = "messages[" + std::to_string(i) + "].";
    if (!m.is_object()) reject_value("messages[" + std::to_string(i) + "]", "an object with role and content", m);
    Fields mf(m, prefix);
    std::optional<std::string> role = mf.string("role");
    if (!role) reject(prefix + "role", prefix + "role is required", "missing_field");
    if (std::find(std::begin(kRoles), std::end(kRoles), *role) == std::end(kRoles))
      reject(prefix + "role",
             prefix + "role must be one of system, developer, user, assistant, tool, function, ipython; got \"" + *role + "\"");
    ChatMessageIn& message = out->messages.emplace_back();
    message.role = *role;
    message.content = read_content(m, prefix, *role);
    message.name = mf.string("name").value_or("");
  }
}

void parse_chat(const json& root, const CodecOptions& options, ChatRequest* out) {
  const CodecLimits& limits = options.limits;
  Fields f(root, "");
  Pending pending;
  out->fields.model = f.string("model").value_or("");
  read_messages(f, limits, out);
  read_generation_fields(f, limits, /*chat=*/true, &out->fields, &pending);
  const bool logprobs = f.boolean("logprobs").value_or(false);
  if (logprobs) out->logprobs = 0;
  if (auto v = f.integer("top_logprobs", 0, limits.max_logprobs)) {
    if (!logprobs) reject("top_logprobs", "top_logprobs needs logprobs to be true");
    out->logprobs = static_cast<int>(*v);
  }
  check_choices(limits, 1, out->fields.n);
  resolve_attention(options, pending, &out->fields);
}

// Starts *out from the defaults, fills it from the body; on a rejection leaves it empty.
template <typename Request, typename Parse>
std::optional<RequestError> parse_with(std::string_view body, const CodecOptions& options, Request* out, Parse parse) {
  *out = Request{};
  out->fields.sampling = options.defaults;  // the SamplingParams part of the defaults
  out->fields.stop.max_tokens = options.defaults.max_tokens;
  try {
    parse(parse_body(body), options, out);
  } catch (const Rejected& rejected) {
    *out = Request{};
    return rejected.error;
  }
  return std::nullopt;
}

}  // namespace

std::optional<RequestError> parse_completion_request(std::string_view body, const CodecOptions& options,
                                                     CompletionRequest* out) {
  return parse_with(body, options, out, parse_completion);
}

std::optional<RequestError> parse_chat_request(std::string_view body, const CodecOptions& options, ChatRequest* out) {
  return parse_with(body, options, out, parse_chat);
}

}  // namespace hotswap::server
