// Read access to one value of a parsed tokenizer.json / tokenizer_config.json that knows
// where it sits ("pre_tokenizer.pretokenizers[1].pattern"), so every malformed or
// unsupported field becomes a LoadError naming the file and the field. Load time only.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hotswap::tok {

// The largest token id a tokenizer file may use; far above any real vocabulary, and low
// enough that "max id + 1" and the ids added tokens get never overflow int32_t.
inline constexpr int64_t kMaxTokenId = (int64_t{1} << 30) - 1;

class JsonField {
 public:
  // `source` names the file in error messages and must outlive this field and its children.
  JsonField(const nlohmann::json& value, std::string where, const std::string& source)
      : value_(&value), where_(std::move(where)), source_(&source) {}

  const nlohmann::json& json() const { return *value_; }
  const std::string& where() const { return where_; }
  const std::string& source() const { return *source_; }
  bool is_null() const { return value_->is_null(); }
  bool is_object() const { return value_->is_object(); }
  bool is_array() const { return value_->is_array(); }
  bool is_string() const { return value_->is_string(); }

  // A required member of an object.
  JsonField at(std::string_view key) const;
  // An optional member: nullopt when absent or null.
  std::optional<JsonField> find(std::string_view key) const;
  // An element of an array.
  JsonField at(size_t index) const;
  size_t array_size() const;

  std::string as_string() const;
  bool as_bool() const;
  int64_t as_int() const;
  // The member `key` as a string or bool, or `fallback` when absent or null.
  std::string get_string(std::string_view key, std::string fallback) const;
  bool get_bool(std::string_view key, bool fallback) const;
  // A single-character string (Metaspace replacement, Strip content).
  char32_t as_char() const;

  // Throws LoadError(source, "<where>: <what>").
  [[noreturn]] void fail(const std::string& what) const;
  // Throws LoadError(source, "<where>.<child>: <what>") for a part of this value that has no
  // JsonField of its own (an entry of a table the streaming parser took out).
  [[noreturn]] void fail_child(const std::string& child, const std::string& what) const;

 private:
  void expect_object() const;
  std::string child_path(std::string_view key) const;

  const nlohmann::json* value_;
  std::string where_;
  const std::string* source_;
};

// Parses JSON text; a syntax error becomes a LoadError naming `source` and the position.
nlohmann::json parse_json(std::string_view text, const std::string& source);

// The JSON type of a value, for messages ("a string", "an object", ...).
std::string json_kind(const nlohmann::json& value);

}  // namespace hotswap::tok
