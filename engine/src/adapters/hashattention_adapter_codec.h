// A `hashattention` adapter (specs/maskers.md Part 1 "`hashattention` adapters", Part 2 §4.6)
// -> HashAttentionAdapter, validated against the base model. The document is safetensors:
//   layers.{L}.query.{i}.weight  [H, d_in, d_out]     layers.{L}.query.{i}.bias  [H, d_out]
//   layers.{L}.key.{i}.weight    [H, d_in, d_out]     layers.{L}.key.{i}.bias    [H, d_out]
// (F32, F16 or BF16, converted to float32, every value finite) with __metadata__
// {"type": "hashattention", "activation": "relu|silu|gelu|tanh"} (other metadata keys are
// ignored). H = num_attention_heads. Per layer and side the MLP layers are i = 0..n-1 with no
// gap (1 <= n <= kMaxHashMlpDepth); the first d_in is head_dim, each d_in is the previous
// d_out, and the last d_out is the signature's bits, 1..64. The query and key MLPs may have
// different depths and widths (and so may layers), but every one of them must end in the same
// number of bits, since the masker compares query and key signatures bit by bit. Every layer
// 0..L-1 has both sides; biases are required (the converter writes zeros for missing ones);
// any other tensor name, or a layer >= L, rejects the document.
//
// A rejection is an InvalidArgument naming the tensor, its layer and expected vs actual, e.g.
//   tensor 'layers.1.key.0.weight' (layer 1): expected shape [8, 16, d_out] (d_in of the first
//   MLP layer = head_dim 16), got [8, 12, 32]
// Memory: 4 bytes per element beyond the input; declared sizes are checked against the data
// (parse_safetensors) before anything is allocated. Pure; thread-safe; never throws.
// Linking: uses parse_safetensors() from hs_model (see adapters/adapter_tensors.h).
#pragma once

#include <memory>
#include <string_view>

#include "adapters/hashattention_adapter.h"
#include "adapters/model_shape.h"
#include "engine/status.h"

namespace hotswap {

inline constexpr int kMaxHashBits = 64;
inline constexpr int kMaxHashMlpDepth = 64;         // MLP layers per side
inline constexpr int kMaxHashMlpWidth = 1 << 16;    // any d_out

Result<std::shared_ptr<const HashAttentionAdapter>> parse_hashattention_adapter(std::string_view safetensors_bytes,
                                                                                const ModelShape& shape);

}  // namespace hotswap
