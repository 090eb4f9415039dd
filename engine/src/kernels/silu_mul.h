// SwiGLU's gate: out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)), in float32.
// gate, up and out are [n]; out may alias gate or up. Large n runs in parallel.
// The vectorised exp is accurate to a few ulp: |out - silu_mul_reference| <= 1e-6 · |g·u|.
#pragma once

#include <cstdint>

namespace hotswap::kernels {

void silu_mul(const float* gate, const float* up, float* out, int64_t n);

// Scalar oracle (std::exp).
void silu_mul_reference(const float* gate, const float* up, float* out, int64_t n);

}  // namespace hotswap::kernels
