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
  kAdaptiveSampling,
  kHashAttentionTopK,
  kMagicPig,
  kQuestTopK,
};

// "sink", "local", "causal", "oracle_top_k", "oracle_top_p", "random_sampling",
// "adaptive_sampling", "hashattention_top_k", "magic_pig", "quest_top_k".
const char* masker_type_name(MaskerType type);
// Random sampling, adaptive sampling and MagicPig: at most one per list (as the reference).
bool is_sampling_masker(MaskerType type);
// Draws from the request's seed (random and adaptive sampling; MagicPig's projections come
// from its own `seed` parameter or an lsh adapter, never from the request).
bool uses_request_seed(MaskerType type);
// Keeps per-sequence summaries of the keys beside the KV cache (HashAttention signatures,
// MagicPig codes, Quest page bounds).
bool keeps_key_summaries(MaskerType type);

// Limits that keep the summaries' sizes and index arithmetic in range.
inline constexpr int kMaxLshTables = 1024;     // lsh_l
inline constexpr int kMaxLshBits = 64;         // lsh_k (one packed int64 code per table)
inline constexpr int kMaxQuestPageSize = 1 << 16;

struct MaskerSpec {
  MaskerType type = MaskerType::kCausal;
  Size size;                 // sink_size | window_size | heavy_size
  double top_p = 0;          // oracle_top_p
  double sampling_rate = 0;  // random_sampling
  // adaptive_sampling
  Size base_rate_sampling, init_offset, local_offset;
  double epsilon = 0, delta = 0;
  double z = 0;  // the one-sided normal quantile of 1 - delta (the reference's norm.ppf(1 - delta))
  // magic_pig
  int lsh_l = 0, lsh_k = 0;
  bool center = true;
  int64_t seed = 42;  // the projections' generator seed (seed + layer), the reference's default
  // quest_top_k (size = heavy_size)
  int page_size = 0;
  int label_bits = 16;  // 16 = bounds kept exact (the reference's default)

  bool operator==(const MaskerSpec&) const = default;
};

struct MaskedConfig {
  std::vector<MaskerSpec> maskers;

  // The first masker of `type`, or null.
  const MaskerSpec* find(MaskerType type) const;
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
