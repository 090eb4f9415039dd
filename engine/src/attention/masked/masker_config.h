// The `masked` attention implementation's request configuration (specs/maskers.md Part 1
// "Request", Part 2 §3-5): an ordered list of research maskers with typed parameters, parsed
// from the request's attention object and validated once at admission. Parsing is pure and
// thread-safe; a parsed MaskedConfig is immutable and shared by every step of the request.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/status.h"

namespace hotswap::masked {

// A size that keeps the reference's int/float distinction, read from the JSON literal: an
// integer literal (128) is a number of tokens, a literal with a fraction or an exponent (0.05,
// 1.0, 1e-1) a fraction of the keys the query sees. 1 and 1.0 differ.
struct Size {
  bool is_fraction = false;
  int64_t tokens = 0;
  double fraction = 0.0;

  // `tokens`, or int(fraction * sk) truncated toward zero as Python's int(float * int) does
  // (saturating at INT64_MAX for absurd fractions, which only ever makes a masker FULL).
  int64_t resolve(int64_t sk) const;
  bool is_zero() const { return is_fraction ? fraction == 0.0 : tokens == 0; }
  bool operator==(const Size&) const = default;
};

enum class MaskerType {
  kSink,
  kLocal,
  kCausal,
  kOracleTopK,
  kOracleTopP,
  kRandomSampling,
  kAdaptiveSampling
};

// "sink", "local", "causal", "oracle_top_k", "oracle_top_p", "random_sampling", "adaptive_sampling".
const char* masker_type_name(MaskerType type);
// Random and adaptive sampling (MagicPig, the third sampling masker, is not served yet).
bool is_sampling_masker(MaskerType type);

struct MaskerSpec {
  MaskerType type = MaskerType::kCausal;
  Size size;                 // sink_size | window_size | heavy_size
  double top_p = 0;          // oracle_top_p
  double sampling_rate = 0;  // random_sampling
  // adaptive_sampling
  Size base_rate_sampling, init_offset, local_offset;
  double epsilon = 0, delta = 0;
  double z = 0;  // the one-sided normal quantile of 1 - delta (the reference's norm.ppf(1 - delta))

  bool operator==(const MaskerSpec&) const = default;
};

struct MaskedConfig {
  std::vector<MaskerSpec> maskers;
  bool sparse_prefill = false;
  bool report_error = false;

  // The canonical text of the whole configuration, itself a valid attention object that parses
  // back to an equal config: {"impl":"masked","maskers":[{"type":..., params in the spec's
  // order}],"sparse_prefill":..,"report_error":..}, no spaces. Equal configs give equal keys;
  // sizes print as they were typed (1 vs 1.0 differ); float-only parameters always print as
  // floats (sampling_rate 1 and 1.0 are the same masker and give the same key).
  std::string key() const;
  bool operator==(const MaskedConfig&) const = default;
};

// Parses the request's whole attention object, e.g.
//   {"impl":"masked","maskers":[{"type":"sink","sink_size":128}],"sparse_prefill":false,"report_error":true}
// Every problem is Status::invalid_argument with a message that starts "attention 'masked': "
// and names the masker by index and type and the parameter, e.g.
//   "attention 'masked': maskers[2] (oracle_top_k): heavy_size must be > 0, got -1".
Result<MaskedConfig> parse_masked_config(const nlohmann::json& attention);

}  // namespace hotswap::masked
