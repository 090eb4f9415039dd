// The numeric fields of a generation request, each declared once with its name (as clients
// spell it) and its valid values. Every entry point checks against this one table: the HTTP
// codec (server/api), the server's configured defaults (server/server_config.cc) and
// Engine::submit (check_sampling_params, for callers that bypass the codec).
//
// The table and its wording are header-only (constexpr data, inline text): hotswap_server_core
// uses them without linking the engine, whose facade pulls in model and scheduler code. Only
// the engine's own checks (Status values, below) live in engine/src/api/request_fields.cc.
#pragma once

#include <charconv>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "engine/sampling_params.h"
#include "engine/status.h"

namespace hotswap {

struct FieldRange {
  // kInteger: whole numbers that fit an int (the engine stores them as int).
  enum class Kind { kNumber, kInteger };
  static constexpr double kNoUpperBound = std::numeric_limits<double>::infinity();
  static constexpr double kIntMax = std::numeric_limits<int32_t>::max();

  std::string_view name;
  Kind kind = Kind::kNumber;
  double lo = 0;
  double hi = kNoUpperBound;
  bool lo_open = false;  // lo itself is not valid (top_p > 0)

  constexpr bool is_integer() const { return kind == Kind::kInteger; }
  // An integer bound at int's maximum says nothing a client needs to read.
  constexpr bool bounded_above() const { return is_integer() ? hi < kIntMax : hi != kNoUpperBound; }

  // NaN and infinities are never valid; integers must be whole and fit an int.
  constexpr bool contains(double v) const {
    if (v != v || v == kNoUpperBound || v == -kNoUpperBound) return false;
    if (lo_open ? !(v > lo) : !(v >= lo)) return false;
    if (v > hi) return false;
    if (!is_integer()) return true;
    return v <= kIntMax && v >= -kIntMax && static_cast<double>(static_cast<int64_t>(v)) == v;
  }

  // The same field with bounds known only at run time (max_tokens: the engine's max_new_tokens).
  constexpr FieldRange with_bounds(double new_lo, double new_hi) const {
    FieldRange r = *this;
    r.lo = new_lo;
    r.hi = new_hi;
    return r;
  }

  // What a message says the value must be: "a number between 0 and 2", "a number > 0 and
  // <= 1", "an integer >= -1". Messages read "<field> must be <expectation>, got <value>".
  std::string expectation() const {
    std::string words = is_integer() ? "an integer " : "a number ";
    if (!bounded_above()) return words + (lo_open ? "> " : ">= ") + format_bound(lo);
    if (!lo_open) return words + "between " + format_bound(lo) + " and " + format_bound(hi);
    return words + "> " + format_bound(lo) + " and <= " + format_bound(hi);
  }

  // Shortest fixed notation: 2 -> "2", 0.5 -> "0.5", 4096 -> "4096".
  static std::string format_bound(double v) {
    char buf[64];
    const auto end = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed).ptr;
    return std::string(buf, end);
  }
};

// The table. Fields without a line here (n, logprobs, stop, ...) are bounded by the server's
// limits only and are checked where those limits live (server/api/request_codec.cc).
namespace request_fields {
using Kind = FieldRange::Kind;
// Upper bound: the engine's max_new_tokens (with_bounds); 0 only when scoring a prompt.
inline constexpr FieldRange kMaxTokens{"max_tokens", Kind::kInteger, 1};
inline constexpr FieldRange kTemperature{"temperature", Kind::kNumber, 0, 2};  // 0 = greedy
inline constexpr FieldRange kTopP{"top_p", Kind::kNumber, 0, 1, /*lo_open=*/true};
inline constexpr FieldRange kTopK{"top_k", Kind::kInteger, -1};  // 0 or negative = off
inline constexpr FieldRange kMinP{"min_p", Kind::kNumber, 0, 1};
inline constexpr FieldRange kRepetitionPenalty{"repetition_penalty", Kind::kNumber, 0, FieldRange::kNoUpperBound,
                                               /*lo_open=*/true};
inline constexpr FieldRange kPresencePenalty{"presence_penalty", Kind::kNumber, -2, 2};
inline constexpr FieldRange kFrequencyPenalty{"frequency_penalty", Kind::kNumber, -2, 2};
}  // namespace request_fields

// The engine's side (engine/src/api/request_fields.cc, in hotswap_engine): InvalidArgument
// naming the field first ("min_p must be a number between 0 and 1, got 1.5"), or OK.
Status check_field(const FieldRange& field, double value);
// Every table field of `params`, in the table's order; the first one out of range.
Status check_sampling_params(const SamplingParams& params);

}  // namespace hotswap
