// An `lsh` adapter (specs/maskers.md Part 1 "Determinism"): MagicPig's projections given
// explicitly. Safetensors with one tensor per layer L, `layers.{L}.projection`, shape
// [head_dim + 1, C] (F32, F16 or BF16, converted to float32, every value finite), the same
// C = lsh_l * lsh_k (1..kMaxLshColumns) in every layer, and __metadata__ {"type": "lsh"}
// (other metadata keys are ignored). Every layer 0..L-1 exactly once; any other tensor name
// or a layer >= L rejects the document.
//
// A rejection is an InvalidArgument naming the tensor, its layer and expected vs actual, e.g.
//   tensor 'layers.1.projection' (layer 1): expected shape [17, 64] (the same lsh_l * lsh_k
//   columns as 'layers.0.projection'), got [17, 32]
// Memory: 4 bytes per element beyond the input, allocated after parse_safetensors() checked
// the declared sizes against the data. Pure; thread-safe; never throws.
// Linking: uses parse_safetensors() from hs_model (see adapters/adapter_tensors.h).
#pragma once

#include <memory>
#include <string_view>

#include "adapters/lsh_adapter.h"
#include "adapters/model_shape.h"
#include "engine/status.h"

namespace hotswap {

inline constexpr int kMaxLshColumns = 1 << 16;

Result<std::shared_ptr<const LshAdapter>> parse_lsh_adapter(std::string_view safetensors_bytes, const ModelShape& shape);

}  // namespace hotswap
