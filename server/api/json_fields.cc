#include "api/json_fields.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include <nlohmann/json.hpp>

#include "engine/utf8.h"

namespace hotswap::server {
namespace {

using json = nlohmann::json;

constexpr int kMaxNesting = 64;

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

}  // namespace

void reject(std::string param, std::string message, std::string code) {
  throw Rejected{{std::move(message), std::move(param), std::move(code)}};
}

void reject_value(const std::string& param, const std::string& expectation, const json& got) {
  const bool wrong_type = got.is_string() || got.is_array() || got.is_object() || got.is_boolean() || got.is_null();
  reject(param, param + " must be " + expectation + ", got " + describe(got), wrong_type ? "invalid_type" : "invalid_value");
}

std::string dump(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

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

bool is_valid_utf8(std::string_view text, std::size_t* bad_offset) {
  const std::size_t valid = valid_utf8_prefix(text);
  if (valid == text.size()) return true;
  if (bad_offset) *bad_offset = valid;
  return false;
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

const json* Fields::get(std::string_view key) const {
  auto it = object_.find(std::string(key));
  if (it == object_.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<double> Fields::number(const FieldRange& range, const char* bound_note) const {
  const json* v = get(range.name);
  if (!v) return std::nullopt;
  std::optional<double> value;
  if (range.is_integer()) {
    if (std::optional<int64_t> i = as_integer(*v)) value = static_cast<double>(*i);
  } else if (v->is_number()) {
    value = v->get<double>();
  }
  // The engine holds numbers as float: 1e-50 would become 0, 1e39 infinity.
  const bool fits =
      value && range.contains(*value) && (range.is_integer() || range.contains(static_cast<float>(*value)));
  if (!fits) {
    std::string expectation = range.expectation();
    if (bound_note) expectation += std::string(" (") + bound_note + ")";
    reject_value(name(range.name), expectation, *v);
  }
  return value;
}

std::optional<int64_t> Fields::integer(std::string_view key, int64_t lo, int64_t hi) const {
  const FieldRange range{key, FieldRange::Kind::kInteger, static_cast<double>(lo), static_cast<double>(hi)};
  std::optional<double> value = number(range);
  if (!value) return std::nullopt;
  return static_cast<int64_t>(*value);
}

std::optional<bool> Fields::boolean(std::string_view key) const {
  const json* v = get(key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) reject_value(name(key), "a boolean", *v);
  return v->get<bool>();
}

std::optional<std::string> Fields::string(std::string_view key) const {
  const json* v = get(key);
  if (!v) return std::nullopt;
  if (!v->is_string()) reject_value(name(key), "a string", *v);
  return v->get<std::string>();
}

}  // namespace hotswap::server
