// Token embedding: out[0, dim) = table[id, :] as float32. table is [vocab, dim], stored as
// F32, BF16 or F16 (any 2-byte alignment). id outside [0, vocab) is a bug (HS_CHECK): the
// tokenizer and request validation keep ids in range.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace hotswap::kernels {

void embedding_lookup(const TensorView& table, int32_t id, float* out);

// Scalar oracle.
void embedding_lookup_reference(const TensorView& table, int32_t id, float* out);

}  // namespace hotswap::kernels
