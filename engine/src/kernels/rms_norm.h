// RMSNorm as Hugging Face's LlamaRMSNorm computes it in float32:
//   y[r, :] = (x[r, :] * rsqrt(mean(x[r, :]^2) + eps)) * weight
// x and y are [rows, dim] float32 and may be the same buffer (in place); weight is [dim],
// stored as F32, BF16 or F16 (any 2-byte alignment). Rows run in parallel when large.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace hotswap::kernels {

void rms_norm(const float* x, int64_t rows, int64_t dim, const TensorView& weight, float eps, float* y);

// Scalar oracle (sum of squares in double).
void rms_norm_reference(const float* x, int64_t rows, int64_t dim, const TensorView& weight, float eps,
                        float* y);

}  // namespace hotswap::kernels
