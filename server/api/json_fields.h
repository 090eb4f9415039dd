// Reading an untrusted JSON body field by field, for the request codec (request_codec.cc).
// A wrong type or an out-of-range value throws Rejected, whose message names the field and
// what was received ("max_tokens must be an integer between 1 and 4096 (the server's
// max_new_tokens), got -5"); the codec's entry points catch it, so it never leaves the codec.
// Throwing keeps every field check to one line.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "engine/request_fields.h"

namespace hotswap::server {

struct RequestError {
  std::string message;
  std::string param;  // the offending field ("messages[2].role"), "" for the whole body
  std::string code;   // "invalid_json", "invalid_utf8", "invalid_type", "invalid_value", "missing_field",
                      // "unsupported_field"
};

struct Rejected {
  RequestError error;
};

[[noreturn]] void reject(std::string param, std::string message, std::string code = "invalid_value");
// "<param> must be <expectation>, got <value>": invalid_type for a value of the wrong kind.
[[noreturn]] void reject_value(const std::string& param, const std::string& expectation, const nlohmann::json& got);

// True if `text` is well-formed UTF-8; otherwise false and *bad_offset = first bad byte.
bool is_valid_utf8(std::string_view text, std::size_t* bad_offset);

// The body as a JSON object: valid UTF-8, nested at most 64 deep, parseable, an object.
nlohmann::json parse_body(std::string_view body);

// Compact JSON text; invalid UTF-8 becomes U+FFFD instead of throwing.
std::string dump(const nlohmann::json& value);

// The value of a JSON number that is an integer, floats with an integral value (5.0) included.
std::optional<int64_t> as_integer(const nlohmann::json& value);

// The fields of one JSON object. `prefix` names the object in messages ("" at the top level,
// "messages[2]." for a message). Absent and null fields read as "not given" (nullopt).
class Fields {
 public:
  Fields(const nlohmann::json& object, std::string prefix) : object_(object), prefix_(std::move(prefix)) {}

  std::string name(std::string_view key) const { return prefix_ + std::string(key); }
  const nlohmann::json* get(std::string_view key) const;

  // A number within `range` (also once rounded to float, as the engine holds it), read under
  // range.name. `bound_note` says where the upper bound comes from, for the message ("the
  // server's max_new_tokens").
  std::optional<double> number(const FieldRange& range, const char* bound_note = nullptr) const;
  // An integer in [lo, hi]; hi at int's maximum reads as no upper bound.
  std::optional<int64_t> integer(std::string_view key, int64_t lo, int64_t hi) const;
  std::optional<bool> boolean(std::string_view key) const;
  std::optional<std::string> string(std::string_view key) const;

 private:
  const nlohmann::json& object_;
  std::string prefix_;
};

}  // namespace hotswap::server
