#include "tokenizer/tokenizer_config.h"

#include "tokenizer/json_field.h"

namespace hotswap::tok {
namespace {

// A special token is written as "<s>", as null, or as a serialized AddedToken
// {"__type": "AddedToken", "content": "<s>", ...}.
std::string token_name(const JsonField& root, std::string_view key) {
  const auto field = root.find(key);
  if (!field) return "";
  if (field->is_object()) return field->at("content").as_string();
  return field->as_string();
}

std::optional<bool> optional_bool(const JsonField& root, std::string_view key) {
  const auto field = root.find(key);
  if (!field) return std::nullopt;
  return field->as_bool();
}

std::string chat_template(const JsonField& root) {
  const auto field = root.find("chat_template");
  if (!field) return "";
  if (field->is_string()) return field->as_string();
  for (size_t i = 0; i < field->array_size(); ++i) {
    const JsonField entry = field->at(i);
    if (entry.at("name").as_string() == "default") return entry.at("template").as_string();
  }
  return "";
}

}  // namespace

TokenizerConfig parse_tokenizer_config(const std::string& json, const std::string& source) {
  TokenizerConfig config;
  if (json.empty()) return config;
  const nlohmann::json parsed = parse_json(json, source);
  const JsonField root(parsed, "", source);
  if (!root.is_object()) root.fail("expected an object, found " + json_kind(parsed));
  config.bos_token = token_name(root, "bos_token");
  config.eos_token = token_name(root, "eos_token");
  config.pad_token = token_name(root, "pad_token");
  config.unk_token = token_name(root, "unk_token");
  config.chat_template = chat_template(root);
  config.add_bos_token = optional_bool(root, "add_bos_token");
  config.add_eos_token = optional_bool(root, "add_eos_token");
  return config;
}

}  // namespace hotswap::tok
