// Dense projections: y[m, n] = x[m, k] · W[n, k]^T (+ bias[n]).
// W is stored as F32, BF16 or F16 ([out_features, in_features], as in PyTorch) and is read
// in its stored precision; accumulation is float32. The CPU ISA (AVX-512 / AVX2 / scalar)
// is chosen once at run time.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace hotswap::kernels {

void linear(const float* x, int64_t m, const TensorView& w, const float* bias, float* y);

// Scalar, obviously correct: the oracle the fast path is tested against.
void linear_reference(const float* x, int64_t m, const TensorView& w, const float* bias, float* y);

// Name of the implementation linear() dispatches to ("avx512_bf16", "avx2", "scalar", ...).
const char* linear_isa();

}  // namespace hotswap::kernels
