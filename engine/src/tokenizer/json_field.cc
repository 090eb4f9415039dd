#include "tokenizer/json_field.h"

#include "core/load_error.h"
#include "core/utf8.h"

namespace hotswap::tok {

std::string json_kind(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::object: return "an object";
    case nlohmann::json::value_t::array: return "an array";
    case nlohmann::json::value_t::string: return "a string";
    case nlohmann::json::value_t::boolean: return "a boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned: return "an integer";
    case nlohmann::json::value_t::number_float: return "a number";
    default: return "an unsupported JSON value";
  }
}

nlohmann::json parse_json(std::string_view text, const std::string& source) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw LoadError(source, std::string("invalid JSON: ") + e.what());
  }
}

void JsonField::fail(const std::string& what) const {
  throw LoadError(*source_, (where_.empty() ? std::string("top level") : where_) + ": " + what);
}

void JsonField::fail_child(const std::string& child, const std::string& what) const {
  throw LoadError(*source_, child_path(child) + ": " + what);
}

void JsonField::expect_object() const {
  if (!value_->is_object()) fail("expected an object, found " + json_kind(*value_));
}

std::string JsonField::child_path(std::string_view key) const {
  return where_.empty() ? std::string(key) : where_ + "." + std::string(key);
}

JsonField JsonField::at(std::string_view key) const {
  expect_object();
  const auto it = value_->find(key);
  if (it == value_->end()) fail("missing field '" + std::string(key) + "'");
  return JsonField(*it, child_path(key), *source_);
}

std::optional<JsonField> JsonField::find(std::string_view key) const {
  expect_object();
  const auto it = value_->find(key);
  if (it == value_->end() || it->is_null()) return std::nullopt;
  return JsonField(*it, child_path(key), *source_);
}

JsonField JsonField::at(size_t index) const {
  if (!value_->is_array()) fail("expected an array, found " + json_kind(*value_));
  if (index >= value_->size()) fail("index " + std::to_string(index) + " out of range");
  return JsonField((*value_)[index], where_ + "[" + std::to_string(index) + "]", *source_);
}

size_t JsonField::array_size() const {
  if (!value_->is_array()) fail("expected an array, found " + json_kind(*value_));
  return value_->size();
}

std::string JsonField::as_string() const {
  if (!value_->is_string()) fail("expected a string, found " + json_kind(*value_));
  const auto& s = value_->get_ref<const std::string&>();
  if (!is_valid_utf8(s)) fail("string is not valid UTF-8");
  return s;
}

bool JsonField::as_bool() const {
  if (!value_->is_boolean()) fail("expected a boolean, found " + json_kind(*value_));
  return value_->get<bool>();
}

int64_t JsonField::as_int() const {
  if (value_->is_number_unsigned()) {
    const auto v = value_->get<uint64_t>();
    if (v > static_cast<uint64_t>(INT64_MAX)) fail("integer out of range");
    return static_cast<int64_t>(v);
  }
  if (!value_->is_number_integer()) fail("expected an integer, found " + json_kind(*value_));
  return value_->get<int64_t>();
}

std::string JsonField::get_string(std::string_view key, std::string fallback) const {
  const auto f = find(key);
  return f ? f->as_string() : std::move(fallback);
}

bool JsonField::get_bool(std::string_view key, bool fallback) const {
  const auto f = find(key);
  return f ? f->as_bool() : fallback;
}

char32_t JsonField::as_char() const {
  const std::string s = as_string();
  if (s.empty()) fail("expected a single character, found an empty string");
  size_t length = 0;
  const char32_t c = decode_utf8(s, 0, &length);
  if (length != s.size()) fail("expected a single character, found '" + s + "'");
  return c;
}

}  // namespace hotswap::tok
