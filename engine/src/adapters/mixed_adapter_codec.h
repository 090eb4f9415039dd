// adapter_weight.json -> mixed Adapter, validated against the base model exactly as
// specs/adapters.md says. Accepted variants: `adapter_type` absent (means mixed); window
// parameters absent (defaults 128 / 1024 / 128); the layer dictionary at top level instead
// of under `adapter_weight_dict`; keys with or without the `.weight` suffix; per layer either
// Hkv gates (repeated to each group's query heads) or H gates (one per query head, kept as
// given). Anything else rejects the whole document with an InvalidArgument whose message
// names the key, the layer and the expected and actual value or size.
//
// Pure function of its inputs; thread-safe. Never throws on any input (fuzzed).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "adapters/adapter.h"
#include "adapters/model_shape.h"
#include "engine/status.h"

namespace hotswap {

// Limits that keep window arithmetic in int range and parsing bounded.
inline constexpr int kMaxWindowTokens = 1 << 30;
inline constexpr int kMaxAdapterJsonDepth = 64;

// `json` is the document's bytes (UTF-8); the adapter's sha256 is taken over exactly these
// bytes. `shape` must be a valid model shape (num_heads a multiple of num_kv_heads).
Result<std::shared_ptr<const Adapter>> parse_mixed_adapter(std::string_view json, const ModelShape& shape,
                                                           std::string name = {});

}  // namespace hotswap
