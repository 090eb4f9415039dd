// Residual add: y[i] += x[i] for i < n, float32. x and y must not partially overlap
// (x == y is allowed). Large n runs in parallel.
#pragma once

#include <cstdint>

namespace hotswap::kernels {

void add_inplace(float* y, const float* x, int64_t n);

// Scalar oracle.
void add_inplace_reference(float* y, const float* x, int64_t n);

}  // namespace hotswap::kernels
