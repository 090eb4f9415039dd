#include "engine/attention_choice.h"

#include <cctype>
#include <cmath>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

namespace hotswap {
namespace {

constexpr const char* kValidImpls = "auto, eager, streaming, mixed, nsa";
constexpr const char* kValidFields = "impl, sink_window_size, recent_window_size, block_size, gate_threshold";
constexpr int64_t kMaxWindow = int64_t{1} << 30;  // matches adapters' kMaxWindowTokens

bool impl_from_name(std::string_view name, AttentionImpl* out) {
  if (name == "auto") *out = AttentionImpl::kAuto;
  else if (name == "eager") *out = AttentionImpl::kEager;
  else if (name == "streaming") *out = AttentionImpl::kStreaming;
  else if (name == "mixed") *out = AttentionImpl::kMixed;
  else if (name == "nsa") *out = AttentionImpl::kNsa;
  else return false;
  return true;
}

std::string unknown_impl(std::string_view name) {
  return "attention: unknown implementation '" + std::string(name.substr(0, 64)) + "'; valid: " + kValidImpls;
}

bool read_window(const nlohmann::json& v, const std::string& field, int64_t min_value, std::optional<int>* out,
                 std::string* error) {
  if (!v.is_number_integer() || v.get<int64_t>() < min_value || v.get<int64_t>() > kMaxWindow ||
      (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(kMaxWindow))) {
    *error = "attention: field '" + field + "' must be an integer in [" + std::to_string(min_value) + ", " +
             std::to_string(kMaxWindow) + "], got " + v.dump();
    return false;
  }
  *out = static_cast<int>(v.get<int64_t>());
  return true;
}

}  // namespace

const char* attention_impl_name(AttentionImpl impl) {
  switch (impl) {
    case AttentionImpl::kAuto: return "auto";
    case AttentionImpl::kEager: return "eager";
    case AttentionImpl::kStreaming: return "streaming";
    case AttentionImpl::kMixed: return "mixed";
    case AttentionImpl::kNsa: return "nsa";
  }
  return "unknown";
}

bool parse_attention_choice(const std::string& text, AttentionChoice* out, std::string* error) {
  std::string_view s = text;
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  AttentionChoice choice;
  if (s.empty() || (s.front() != '{' && s.front() != '"')) {
    if (!impl_from_name(s, &choice.impl)) {
      *error = unknown_impl(s);
      return false;
    }
    *out = choice;
    return true;
  }

  const nlohmann::json j = nlohmann::json::parse(s, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    *error = "attention: not a name (" + std::string(kValidImpls) + ") or a valid JSON object";
    return false;
  }
  if (j.is_string()) {
    if (!impl_from_name(j.get_ref<const std::string&>(), &choice.impl)) {
      *error = unknown_impl(j.get_ref<const std::string&>());
      return false;
    }
    *out = choice;
    return true;
  }
  if (!j.is_object()) {
    *error = std::string("attention: expected a name (") + kValidImpls + ") or an object, got " + j.type_name();
    return false;
  }
  if (!j.contains("impl")) {
    *error = std::string("attention: field 'impl' is required; valid: ") + kValidImpls;
    return false;
  }
  for (const auto& [key, value] : j.items()) {
    if (key == "impl") {
      if (!value.is_string()) {
        *error = std::string("attention: field 'impl' must be a string, one of ") + kValidImpls;
        return false;
      }
      if (!impl_from_name(value.get_ref<const std::string&>(), &choice.impl)) {
        *error = unknown_impl(value.get_ref<const std::string&>());
        return false;
      }
    } else if (key == "sink_window_size") {
      if (!read_window(value, key, 0, &choice.sink_window_size, error)) return false;
    } else if (key == "recent_window_size") {
      if (!read_window(value, key, 1, &choice.recent_window_size, error)) return false;
    } else if (key == "block_size") {
      if (!read_window(value, key, 1, &choice.block_size, error)) return false;
    } else if (key == "gate_threshold") {
      if (!value.is_number() || !std::isfinite(value.get<double>()) || value.get<double>() < 0.0 ||
          value.get<double>() > 1.0) {
        *error = "attention: field 'gate_threshold' must be a number in [0, 1], got " + value.dump();
        return false;
      }
      choice.gate_threshold = value.get<float>();
    } else {
      *error = "attention: unknown field '" + key.substr(0, 64) + "'; valid fields: " + kValidFields;
      return false;
    }
  }
  *out = choice;
  return true;
}

}  // namespace hotswap
