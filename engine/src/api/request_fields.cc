#include "engine/request_fields.h"

#include <charconv>

namespace hotswap {
namespace {

// A value as the caller holds it: the engine's fields are floats, so a value that is exactly
// a float prints as that float (0.1f as "0.1", not its double expansion). Fixed notation, so
// integers print whole (1000000, not 1e+06).
std::string format_value(double v) {
  char buf[512];
  const float f = static_cast<float>(v);
  const auto end = static_cast<double>(f) == v ? std::to_chars(buf, buf + sizeof buf, f, std::chars_format::fixed).ptr
                                               : std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed).ptr;
  return std::string(buf, end);
}

}  // namespace

Status check_field(const FieldRange& field, double value) {
  if (field.contains(value)) return Status::ok();
  return Status::invalid_argument(std::string(field.name) + " must be " + field.expectation() + ", got " +
                                  format_value(value));
}

Status check_sampling_params(const SamplingParams& s) {
  using namespace request_fields;
  for (const auto& [field, value] : {std::pair{kTemperature, double{s.temperature}}, std::pair{kTopP, double{s.top_p}},
                                     std::pair{kTopK, double(s.top_k)}, std::pair{kMinP, double{s.min_p}},
                                     std::pair{kRepetitionPenalty, double{s.repetition_penalty}},
                                     std::pair{kPresencePenalty, double{s.presence_penalty}},
                                     std::pair{kFrequencyPenalty, double{s.frequency_penalty}}}) {
    if (Status status = check_field(field, value); !status) return status;
  }
  return Status::ok();
}

}  // namespace hotswap
