#include "engine/attention_choice.h"

#include <cctype>
#include <string_view>

#include <nlohmann/json.hpp>

#include "attention/backend_registry.h"

namespace hotswap {
namespace {

bool known(std::string_view name) { return name == "auto" || find_attention_backend(name) != nullptr; }

std::string unknown_impl(std::string_view name) {
  return "attention: unknown implementation '" + std::string(name.substr(0, 64)) + "'; valid: " +
         attention_choice_names();
}

}  // namespace

bool parse_attention_choice(const std::string& text, AttentionChoice* out, std::string* error) {
  std::string_view s = text;
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  AttentionChoice choice;
  if (s.empty() || (s.front() != '{' && s.front() != '"')) {
    if (!known(s)) {
      *error = unknown_impl(s);
      return false;
    }
    choice.impl = std::string(s);
    *out = choice;
    return true;
  }

  const nlohmann::json j = nlohmann::json::parse(s, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    *error = "attention: not a name (" + attention_choice_names() + ") or a valid JSON object";
    return false;
  }
  if (j.is_string()) {
    if (!known(j.get_ref<const std::string&>())) {
      *error = unknown_impl(j.get_ref<const std::string&>());
      return false;
    }
    choice.impl = j.get<std::string>();
    *out = choice;
    return true;
  }
  if (!j.is_object()) {
    *error = "attention: expected a name (" + attention_choice_names() + ") or an object, got " + j.type_name();
    return false;
  }
  const auto impl = j.find("impl");
  if (impl == j.end()) {
    *error = "attention: field 'impl' is required; valid: " + attention_choice_names();
    return false;
  }
  if (!impl->is_string()) {
    *error = "attention: field 'impl' must be a string, one of " + attention_choice_names();
    return false;
  }
  choice.impl = impl->get<std::string>();
  if (!known(choice.impl)) {
    *error = unknown_impl(choice.impl);
    return false;
  }
  // `auto`'s fields are checked by the implementation it picks, once the adapter is known.
  if (const AttentionBackend* backend = find_attention_backend(choice.impl)) {
    if (Status st = backend->check_params(j); !st) {
      *error = st.message();
      return false;
    }
  }
  choice.params = j.dump();
  *out = choice;
  return true;
}

}  // namespace hotswap
