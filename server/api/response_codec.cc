#include "api/response_codec.h"

#include <utility>

#include <nlohmann/json.hpp>

namespace hotswap::server {
namespace {

// Insertion-ordered: keys come out in the order OpenAI documents them.
using ojson = nlohmann::ordered_json;

std::string text(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

ojson nullable(const std::optional<std::string>& value) { return value ? ojson(*value) : ojson(nullptr); }

ojson header_json(const ResponseHeader& h, const char* object) {
  return {{"id", h.id}, {"object", object}, {"created", h.created}, {"model", h.model}};
}

ojson usage_json(const Usage& usage) {
  ojson j = {{"prompt_tokens", usage.prompt_tokens},
             {"completion_tokens", usage.completion_tokens},
             {"total_tokens", usage.prompt_tokens + usage.completion_tokens},
             {"prompt_tokens_details", {{"cached_tokens", usage.cached_tokens}}}};
  if (!usage.attention_kernel.empty()) j["attention_kernel"] = usage.attention_kernel;
  if (usage.attention_density) j["attention_density"] = *usage.attention_density;
  if (usage.attention_output_error) j["attention_output_error"] = *usage.attention_output_error;
  if (usage.attention_seed) j["attention_seed"] = *usage.attention_seed;
  return j;
}

void put_usage(ojson& j, const std::optional<Usage>& usage, const ChunkJsonOptions& options) {
  if (usage) j["usage"] = usage_json(*usage);
  else if (options.null_usage_when_absent) j["usage"] = nullptr;
}

// OpenAI's parallel arrays; an unscored (echoed) token has null logprob and top_logprobs.
ojson completion_logprobs_json(const std::vector<CompletionTokenLogprob>& tokens) {
  ojson texts = ojson::array(), logprobs = ojson::array(), top = ojson::array(), offsets = ojson::array();
  for (const CompletionTokenLogprob& t : tokens) {
    texts.push_back(t.token);
    offsets.push_back(t.text_offset);
    if (!t.logprob) {
      logprobs.push_back(nullptr);
      top.push_back(nullptr);
      continue;
    }
    logprobs.push_back(*t.logprob);
    ojson entry = ojson::object();  // {token text: logprob}; a repeated text keeps its last value
    for (const TopLogprob& alt : t.top_logprobs) entry[alt.token] = alt.logprob;
    top.push_back(std::move(entry));
  }
  return {{"tokens", texts}, {"token_logprobs", logprobs}, {"top_logprobs", top}, {"text_offset", offsets}};
}

ojson bytes_json(const std::string& token) {
  ojson a = ojson::array();
  for (unsigned char c : token) a.push_back(static_cast<int>(c));
  return a;
}

ojson chat_logprobs_json(const std::vector<ChatTokenLogprob>& tokens) {
  ojson content = ojson::array();
  for (const ChatTokenLogprob& t : tokens) {
    ojson top = ojson::array();
    for (const TopLogprob& alt : t.top_logprobs)
      top.push_back({{"token", alt.token}, {"logprob", alt.logprob}, {"bytes", bytes_json(alt.token)}});
    content.push_back({{"token", t.token}, {"logprob", t.logprob}, {"bytes", bytes_json(t.token)}, {"top_logprobs", top}});
  }
  return {{"content", content}};
}

ojson adapter_json(const AdapterInfo& info) {
  ojson parameters = ojson::object();
  if (!info.parameters_json.empty()) {
    parameters = ojson::parse(info.parameters_json, nullptr, /*allow_exceptions=*/false);
    if (parameters.is_discarded()) parameters = ojson::object();
  }
  return {{"name", info.name},         {"object", "adapter"},         {"type", info.type},
          {"layers", info.layers},     {"parameters", parameters},    {"bytes", info.bytes},
          {"sha256", info.sha256},     {"created", info.created},     {"description", info.description},
          {"resident", info.resident}};
}

}  // namespace

std::string to_json(const Completion& c, const ChunkJsonOptions& options) {
  ojson j = header_json(c.header, "text_completion");
  ojson choices = ojson::array();
  for (const CompletionChoice& choice : c.choices) {
    choices.push_back({{"text", choice.text},
                       {"index", choice.index},
                       {"logprobs", choice.logprobs ? completion_logprobs_json(*choice.logprobs) : ojson(nullptr)},
                       {"finish_reason", nullable(choice.finish_reason)}});
  }
  j["choices"] = std::move(choices);
  put_usage(j, c.usage, options);
  return text(j);
}

std::string to_json(const ChatCompletion& c, const ChunkJsonOptions& options) {
  ojson j = header_json(c.header, c.chunk ? "chat.completion.chunk" : "chat.completion");
  ojson choices = ojson::array();
  for (const ChatChoice& choice : c.choices) {
    ojson message = ojson::object();
    if (choice.role) message["role"] = *choice.role;
    if (choice.content) message["content"] = *choice.content;
    choices.push_back({{"index", choice.index},
                       {c.chunk ? "delta" : "message", std::move(message)},
                       {"logprobs", choice.logprobs ? chat_logprobs_json(*choice.logprobs) : ojson(nullptr)},
                       {"finish_reason", nullable(choice.finish_reason)}});
  }
  j["choices"] = std::move(choices);
  put_usage(j, c.usage, options);
  return text(j);
}

std::string to_json(const ModelList& models) {
  ojson data = ojson::array();
  for (const ModelCard& m : models.data) {
    ojson card = {{"id", m.id}, {"object", "model"}, {"created", m.created}, {"owned_by", "hotswap"},
                  {"root", m.root}, {"parent", nullable(m.parent)}};
    if (m.max_model_len > 0) card["max_model_len"] = m.max_model_len;
    data.push_back(std::move(card));
  }
  return text({{"object", "list"}, {"data", std::move(data)}});
}

std::string to_json(const HealthStatus& health) { return text({{"status", health.status}}); }

std::string to_json(const ErrorBody& e) {
  return text({{"error",
                {{"message", e.message},
                 {"type", e.type},
                 {"param", e.param.empty() ? ojson(nullptr) : ojson(e.param)},
                 {"code", e.code}}}});
}

std::string to_json(const AdapterInfo& adapter) { return text(adapter_json(adapter)); }

std::string to_json(const AdapterList& list) {
  ojson adapters = ojson::array();
  for (const AdapterInfo& info : list.adapters) adapters.push_back(adapter_json(info));
  return text({{"adapters", std::move(adapters)}});
}

std::string to_json(const AdapterDeleted& deleted) {
  return text({{"name", deleted.name}, {"object", "adapter"}, {"deleted", true}});
}

}  // namespace hotswap::server
