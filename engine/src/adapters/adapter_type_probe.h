// Tells adapter types apart before a codec parses the document: finds one string value at a
// key path of nested JSON objects without building a DOM, and stops as soon as it has it
// (trainers and our converter write the type first), so the probe costs almost nothing even
// for a large document. Malformed JSON just ends the probe: the codec that then parses the
// document reports the error with its position. Pure functions; never throw.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

namespace hotswap {

struct ProbedString {
  enum class Found { kNone, kString, kNotString };
  Found found = Found::kNone;
  std::string value;  // kString: the value; kNotString: what it was instead ("number 3", "an object")

  bool is(std::string_view s) const { return found == Found::kString && value == s; }
};

// The value at `path` (keys of nested objects from the root object), e.g. {"adapter_type"}.
ProbedString probe_json_string(std::string_view json, std::initializer_list<std::string_view> path);

// `__metadata__`.`type` in the header of a safetensors image (kNone when `bytes` is not one).
ProbedString probe_safetensors_metadata_type(std::string_view bytes);

}  // namespace hotswap
