#include "api/json_codec.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/utf8.h"

namespace hotswap::server {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

constexpr int kMaxNesting = 64;
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

// A validation failure unwinds to the parse_* entry points as this exception; it never
// leaves this file. It keeps every field check to one line.
struct Rejected {
  RequestError error;
};

[[noreturn]] void reject(std::string param, std::string message, std::string code = "invalid_value") {
  throw Rejected{{std::move(message), std::move(param), std::move(code)}};
}

std::string dump(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

// How a received value is shown in a message: scalars as sent, containers by kind.
std::string describe(const json& value) {
  switch (value.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean:
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return dump(value);
    case json::value_t::string: {
      std::string shown = dump(value);
      if (shown.size() > 48) shown = shown.substr(0, 45) + "...\"";
      return "a string " + shown;
    }
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    default: return "an unsupported value";
  }
}

[[noreturn]] void reject_value(const std::string& param, const std::string& expectation, const json& got) {
  const bool wrong_type = got.is_string() || got.is_array() || got.is_object() || got.is_boolean() || got.is_null();
  reject(param, param + " must be " + expectation + ", got " + describe(got), wrong_type ? "invalid_type" : "invalid_value");
}

// Integer value of a JSON number, accepting floats with an integral value (5.0).
std::optional<int64_t> as_integer(const json& value) {
  if (value.is_number_integer() && !value.is_number_unsigned()) return value.get<int64_t>();
  if (value.is_number_unsigned()) {
    const uint64_t u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (value.is_number_float()) {
    const double d = value.get<double>();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.0e15) return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

std::string format_number(double v) {
  json j = v;
  std::string s = j.dump();
  if (s.size() > 2 && s.substr(s.size() - 2) == ".0") s.resize(s.size() - 2);
  return s;
}

// A numeric interval and its wording in messages.
struct Range {
  double lo;
  double hi;
  bool lo_open = false;
  bool hi_open = false;
  bool has_hi = true;

  bool contains(double v) const {
    if (lo_open ? !(v > lo) : !(v >= lo)) return false;
    if (!has_hi) return true;
    return hi_open ? v < hi : v <= hi;
  }
  std::string words() const {
    if (!has_hi) return (lo_open ? "> " : ">= ") + format_number(lo);
    if (!lo_open && !hi_open) return "between " + format_number(lo) + " and " + format_number(hi);
    return (lo_open ? "> " : ">= ") + format_number(lo) + " and " + (hi_open ? "< " : "<= ") + format_number(hi);
  }
};

Range closed(double lo, double hi) { return {lo, hi}; }

// Reads the fields of one JSON object. `prefix` names the object in messages ("" at the
// top level, "messages[2]." for a message). Absent and null fields read as "not given".
class Fields {
 public:
  Fields(const json& object, std::string prefix) : object_(object), prefix_(std::move(prefix)) {}

  std::string name(const char* key) const { return prefix_ + key; }

  const json* get(const char* key) const {
    auto it = object_.find(key);
    if (it == object_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  // `hi_name` names where the upper bound comes from, for the message.
  std::optional<int64_t> integer(const char* key, int64_t lo, int64_t hi, const char* hi_name = nullptr) const {
    const json* v = get(key);
    if (!v) return std::nullopt;
    std::string expectation = hi == kInt32Max ? "an integer >= " + std::to_string(lo)
                                              : "an integer between " + std::to_string(lo) + " and " + std::to_string(hi);
    if (hi_name) expectation += std::string(" (") + hi_name + ")";
    std::optional<int64_t> i = as_integer(*v);
    if (!i || *i < lo || *i > hi) reject_value(name(key), expectation, *v);
    return i;
  }

  std::optional<double> number(const char* key, const Range& range) const {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_number() || !std::isfinite(v->get<double>()) || !range.contains(v->get<double>()))
      reject_value(name(key), "a number " + range.words(), *v);
    return v->get<double>();
  }

  std::optional<bool> boolean(const char* key) const {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) reject_value(name(key), "a boolean", *v);
    return v->get<bool>();
  }

  std::optional<std::string> string(const char* key) const {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_string()) reject_value(name(key), "a string", *v);
    return v->get<std::string>();
  }

 private:
  const json& object_;
  std::string prefix_;
};

// Nesting depth of the body's arrays and objects, counted before parsing so that a hostile
// body cannot make the parser or the value's destructor recurse deeply.
int max_nesting(std::string_view body) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') deepest = std::max(deepest, ++depth);
    else if (c == ']' || c == '}') --depth;
  }
  return deepest;
}

json parse_body(std::string_view body) {
  std::size_t bad = 0;
  if (!is_valid_utf8(body, &bad))
    reject("", "request body is not valid UTF-8 (first bad byte at offset " + std::to_string(bad) + ")", "invalid_utf8");
  if (max_nesting(body) > kMaxNesting)
    reject("", "request body nests arrays/objects deeper than " + std::to_string(kMaxNesting) + " levels", "invalid_json");
  json root;
  try {
    root = json::parse(body);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for numbers like 1e400
    std::string what = e.what();
    if (auto pos = what.find("] "); pos != std::string::npos) what = what.substr(pos + 2);
    reject("", "request body is not valid JSON: " + what, "invalid_json");
  }
  if (!root.is_object()) reject("", "request body must be a JSON object, got " + describe(root), "invalid_json");
  return root;
}

void read_stop(const Fields& f, const CodecLimits& limits, v1::SamplingFields* s) {
  const json* v = f.get("stop");
  if (!v) return;
  auto add = [&](const json& item, const std::string& param) {
    if (!item.is_string()) reject_value(param, "a string", item);
    const std::string& text = item.get_ref<const std::string&>();
    if (text.empty()) reject(param, param + " must not be an empty string");
    if (static_cast<int>(text.size()) > limits.max_stop_bytes)
      reject(param, param + " is " + std::to_string(text.size()) + " bytes; the limit is " + std::to_string(limits.max_stop_bytes));
    s->add_stop(text);
  };
  if (v->is_string()) return add(*v, "stop");
  if (!v->is_array()) reject_value("stop", "a string or an array of strings", *v);
  if (static_cast<int>(v->size()) > limits.max_stop)
    reject("stop", "stop has " + std::to_string(v->size()) + " entries; at most " + std::to_string(limits.max_stop) + " are allowed");
  for (std::size_t i = 0; i < v->size(); ++i) add((*v)[i], "stop[" + std::to_string(i) + "]");
}

void read_seed(const Fields& f, v1::SamplingFields* s) {
  const json* v = f.get("seed");
  if (!v) return;
  if (v->is_number_unsigned()) return s->set_seed(v->get<uint64_t>());
  std::optional<int64_t> i = as_integer(*v);
  if (!i) reject_value("seed", "an integer", *v);
  s->set_seed(static_cast<uint64_t>(*i));  // negative seeds wrap: any integer is a valid seed
}

void read_attention(const Fields& f, v1::SamplingFields* s) {
  const json* v = f.get("attention");
  if (!v) return;
  if (v->is_string()) return s->set_attention(v->get<std::string>());
  if (v->is_object()) return s->set_attention(dump(*v));
  reject_value("attention", "a string (auto, eager, streaming, mixed, nsa) or an object", *v);
}

void reject_if_nonempty_object(const Fields& f, const char* key, const std::string& why) {
  const json* v = f.get(key);
  if (!v) return;
  if (!v->is_object()) reject_value(key, "an object", *v);
  if (!v->empty()) reject(key, std::string(key) + " is not supported: " + why, "unsupported_field");
}

// The fields both endpoints share.
void read_sampling(const Fields& f, const CodecLimits& limits, bool chat, v1::SamplingFields* s) {
  // The upper bound is named in the message: "an integer between 1 and 4096 (the server's max_new_tokens)".
  const char* limit_name = "the server's max_new_tokens";
  // Completions may ask for 0 tokens to score an echoed prompt (the handler checks echo and
  // logprobs); every other value keeps the 1..max range.
  const json* zero = chat ? nullptr : f.get("max_tokens");
  if (zero != nullptr && zero->is_number_integer() && zero->get<int64_t>() == 0)
    s->set_max_tokens(0);
  else if (auto v = f.integer("max_tokens", 1, limits.max_tokens, limit_name))
    s->set_max_tokens(static_cast<int32_t>(*v));
  if (chat) {
    if (auto v = f.integer("max_completion_tokens", 1, limits.max_tokens, limit_name))
      s->set_max_tokens(static_cast<int32_t>(*v));
  }
  if (auto v = f.number("temperature", closed(0, 2))) s->set_temperature(static_cast<float>(*v));
  if (auto v = f.number("top_p", Range{0, 1, true, false})) s->set_top_p(static_cast<float>(*v));
  if (auto v = f.integer("n", 1, limits.max_n)) s->set_n(static_cast<int32_t>(*v));
  read_stop(f, limits, s);
  if (auto v = f.number("presence_penalty", closed(-2, 2))) s->set_presence_penalty(static_cast<float>(*v));
  if (auto v = f.number("frequency_penalty", closed(-2, 2))) s->set_frequency_penalty(static_cast<float>(*v));
  read_seed(f, s);
  if (auto v = f.boolean("stream")) s->set_stream(*v);
  if (const json* so = f.get("stream_options")) {
    if (!so->is_object()) reject_value("stream_options", "an object", *so);
    Fields options(*so, "stream_options.");
    if (auto v = options.boolean("include_usage")) s->mutable_stream_options()->set_include_usage(*v);
    else s->mutable_stream_options();
  }
  if (const json* user = f.get("user"); user && user->is_string()) s->set_user(user->get<std::string>());
  if (auto v = f.integer("top_k", -1, kInt32Max)) s->set_top_k(*v < 0 ? 0 : static_cast<int32_t>(*v));
  if (auto v = f.number("min_p", closed(0, 1))) s->set_min_p(static_cast<float>(*v));
  if (auto v = f.number("repetition_penalty", Range{0, 0, true, false, false})) s->set_repetition_penalty(static_cast<float>(*v));
  if (auto v = f.boolean("ignore_eos")) s->set_ignore_eos(*v);
  read_attention(f, s);
  if (auto v = f.string("adapter")) s->set_adapter(*v);
  reject_if_nonempty_object(f, "logit_bias", "the engine has no logit bias");
}

std::string model_field(const Fields& f) { return f.string("model").value_or(""); }

// One completions prompt given as token ids.
void add_token_prompt(const json& ids, const std::string& param, v1::CompletionRequest* out) {
  if (ids.empty()) reject(param, param + " must not be an empty array of token ids");
  v1::TokenIds* token_ids = out->add_prompts()->mutable_token_ids();
  for (std::size_t i = 0; i < ids.size(); ++i) {
    std::optional<int64_t> id = as_integer(ids[i]);
    if (!id || *id < 0 || *id > kInt32Max)
      reject_value(param + "[" + std::to_string(i) + "]", "a token id (an integer >= 0)", ids[i]);
    token_ids->add_ids(static_cast<int32_t>(*id));
  }
}

void read_prompt(const Fields& f, const CodecLimits& limits, v1::CompletionRequest* out) {
  const json* v = f.get("prompt");
  if (!v) reject("prompt", "prompt is required", "missing_field");
  if (v->is_string()) {
    out->add_prompts()->set_text(v->get<std::string>());
    return;
  }
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
      out->add_prompts()->set_text(item.get<std::string>());
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

void parse_completion(const json& root, const CodecLimits& limits, v1::CompletionRequest* out) {
  Fields f(root, "");
  out->set_model(model_field(f));
  read_prompt(f, limits, out);
  read_sampling(f, limits, /*chat=*/false, out->mutable_sampling());
  if (auto v = f.integer("logprobs", 0, limits.max_logprobs)) out->set_logprobs(static_cast<int32_t>(*v));
  if (auto v = f.boolean("echo")) out->set_echo(*v);
  const int n = out->sampling().has_n() ? out->sampling().n() : 1;
  if (auto best_of = f.integer("best_of", 1, kInt32Max); best_of && *best_of != n)
    reject("best_of", "best_of is not supported (it must equal n); use n for several choices", "unsupported_field");
  if (auto suffix = f.string("suffix"); suffix && !suffix->empty())
    reject("suffix", "suffix is not supported (no insertion mode)", "unsupported_field");
  check_choices(limits, out->prompts_size(), n);
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

void read_messages(const Fields& f, const CodecLimits& limits, v1::ChatCompletionRequest* out) {
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
    v1::ChatMessageIn* message = out->add_messages();
    message->set_role(*role);
    message->set_content(read_content(m, prefix, *role));
    if (auto name = mf.string("name")) message->set_name(*name);
  }
}

void parse_chat(const json& root, const CodecLimits& limits, v1::ChatCompletionRequest* out) {
  Fields f(root, "");
  out->set_model(model_field(f));
  read_messages(f, limits, out);
  read_sampling(f, limits, /*chat=*/true, out->mutable_sampling());
  if (auto v = f.boolean("logprobs")) out->set_logprobs(*v);
  if (auto v = f.integer("top_logprobs", 0, limits.max_logprobs)) {
    if (!out->logprobs()) reject("top_logprobs", "top_logprobs needs logprobs to be true");
    out->set_top_logprobs(static_cast<int32_t>(*v));
  }
  check_choices(limits, 1, out->sampling().has_n() ? out->sampling().n() : 1);
}

template <typename Message, typename Parse>
std::optional<RequestError> parse_with(std::string_view body, const CodecLimits& limits, Message* out, Parse parse) {
  out->Clear();
  try {
    const json root = parse_body(body);
    parse(root, limits, out);
  } catch (const Rejected& rejected) {
    out->Clear();
    return rejected.error;
  }
  return std::nullopt;
}

// ---- writers ----

ojson usage_json(const v1::Usage& usage) {
  ojson j = {{"prompt_tokens", usage.prompt_tokens()},
             {"completion_tokens", usage.completion_tokens()},
             {"total_tokens", usage.total_tokens()}};
  if (usage.has_prompt_tokens_details())
    j["prompt_tokens_details"] = {{"cached_tokens", usage.prompt_tokens_details().cached_tokens()}};
  if (!usage.attention_kernel().empty()) j["attention_kernel"] = usage.attention_kernel();
  if (usage.has_attention_density()) j["attention_density"] = usage.attention_density();
  if (usage.has_attention_output_error()) j["attention_output_error"] = usage.attention_output_error();
  if (usage.has_attention_seed()) j["attention_seed"] = usage.attention_seed();
  return j;
}

void put_usage(ojson& j, bool has, const v1::Usage& usage, const ChunkJsonOptions& options) {
  if (has) j["usage"] = usage_json(usage);
  else if (options.null_usage_when_absent) j["usage"] = nullptr;
}

ojson completion_logprobs_json(const v1::CompletionLogprobs& lp) {
  ojson tokens = ojson::array(), token_logprobs = ojson::array(), top = ojson::array(), offsets = ojson::array();
  for (const auto& t : lp.tokens()) tokens.push_back(t);
  for (const auto& v : lp.token_logprobs()) token_logprobs.push_back(v.has_value() ? ojson(v.value()) : ojson(nullptr));
  for (const auto& m : lp.top_logprobs()) {
    if (m.is_null()) {
      top.push_back(nullptr);
      continue;
    }
    ojson entry = ojson::object();
    for (const auto& [token, logprob] : m.logprobs()) entry[token] = logprob;
    top.push_back(std::move(entry));
  }
  for (int o : lp.text_offset()) offsets.push_back(o);
  return {{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top}, {"text_offset", offsets}};
}

ojson bytes_json(const google::protobuf::RepeatedField<int32_t>& bytes) {
  ojson a = ojson::array();
  for (int32_t b : bytes) a.push_back(b);
  return a;
}

ojson chat_logprobs_json(const v1::ChatLogprobs& lp) {
  ojson content = ojson::array();
  for (const auto& t : lp.content()) {
    ojson top = ojson::array();
    for (const auto& alt : t.top_logprobs())
      top.push_back({{"token", alt.token()}, {"logprob", alt.logprob()}, {"bytes", bytes_json(alt.bytes())}});
    content.push_back({{"token", t.token()}, {"logprob", t.logprob()}, {"bytes", bytes_json(t.bytes())}, {"top_logprobs", top}});
  }
  return {{"content", content}};
}

ojson header_json(const std::string& id, const std::string& object, int64_t created, const std::string& model) {
  return {{"id", id}, {"object", object}, {"created", created}, {"model", model}};
}

std::string text(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

}  // namespace

bool is_valid_utf8(std::string_view s, std::size_t* bad_offset) {
  const std::size_t valid = valid_utf8_prefix(s);
  if (valid == s.size()) return true;
  if (bad_offset) *bad_offset = valid;
  return false;
}

std::optional<RequestError> parse_completion_request(std::string_view body, const CodecLimits& limits,
                                                     v1::CompletionRequest* out) {
  return parse_with(body, limits, out, parse_completion);
}

std::optional<RequestError> parse_chat_request(std::string_view body, const CodecLimits& limits,
                                               v1::ChatCompletionRequest* out) {
  return parse_with(body, limits, out, parse_chat);
}

std::string to_json(const v1::Completion& c, const ChunkJsonOptions& options) {
  ojson j = header_json(c.id(), c.object(), c.created(), c.model());
  ojson choices = ojson::array();
  for (const auto& choice : c.choices()) {
    choices.push_back({{"text", choice.text()},
                       {"index", choice.index()},
                       {"logprobs", choice.has_logprobs() ? completion_logprobs_json(choice.logprobs()) : ojson(nullptr)},
                       {"finish_reason", choice.has_finish_reason() ? ojson(choice.finish_reason()) : ojson(nullptr)}});
  }
  j["choices"] = std::move(choices);
  put_usage(j, c.has_usage(), c.usage(), options);
  return text(j);
}

std::string to_json(const v1::ChatCompletion& c) {
  ojson j = header_json(c.id(), c.object(), c.created(), c.model());
  ojson choices = ojson::array();
  for (const auto& choice : c.choices()) {
    choices.push_back({{"index", choice.index()},
                       {"message", {{"role", choice.message().role()}, {"content", choice.message().content()}}},
                       {"logprobs", choice.has_logprobs() ? chat_logprobs_json(choice.logprobs()) : ojson(nullptr)},
                       {"finish_reason", choice.finish_reason()}});
  }
  j["choices"] = std::move(choices);
  j["usage"] = usage_json(c.usage());
  return text(j);
}

std::string to_json(const v1::ChatCompletionChunk& c, const ChunkJsonOptions& options) {
  ojson j = header_json(c.id(), c.object(), c.created(), c.model());
  ojson choices = ojson::array();
  for (const auto& choice : c.choices()) {
    ojson delta = ojson::object();
    if (choice.delta().has_role()) delta["role"] = choice.delta().role();
    if (choice.delta().has_content()) delta["content"] = choice.delta().content();
    choices.push_back({{"index", choice.index()},
                       {"delta", std::move(delta)},
                       {"logprobs", choice.has_logprobs() ? chat_logprobs_json(choice.logprobs()) : ojson(nullptr)},
                       {"finish_reason", choice.has_finish_reason() ? ojson(choice.finish_reason()) : ojson(nullptr)}});
  }
  j["choices"] = std::move(choices);
  put_usage(j, c.has_usage(), c.usage(), options);
  return text(j);
}

std::string to_json(const v1::ModelList& models) {
  ojson data = ojson::array();
  for (const auto& m : models.data()) {
    ojson card = {{"id", m.id()}, {"object", m.object()}, {"created", m.created()}, {"owned_by", m.owned_by()},
                  {"root", m.root()}, {"parent", m.has_parent() ? ojson(m.parent()) : ojson(nullptr)}};
    if (m.max_model_len() > 0) card["max_model_len"] = m.max_model_len();
    data.push_back(std::move(card));
  }
  return text({{"object", models.object()}, {"data", std::move(data)}});
}

std::string to_json(const v1::ErrorBody& error) {
  const v1::ErrorDetail& d = error.error();
  return text({{"error",
                {{"message", d.message()},
                 {"type", d.type()},
                 {"param", d.has_param() ? ojson(d.param()) : ojson(nullptr)},
                 {"code", d.code()}}}});
}

std::string to_json(const v1::HealthStatus& health) { return text({{"status", health.status()}}); }

}  // namespace hotswap::server
