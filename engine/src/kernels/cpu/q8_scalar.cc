// Portable linear_q8 building blocks: the arithmetic of cpu/q8_kernels.h spelled out one
// element at a time, for CPUs without AVX2 and as the comparison point of the SIMD forms
// (which must match it bit for bit).
#include <algorithm>
#include <cmath>

#include "kernels/cpu/q8_kernels.h"

namespace hotswap::kernels::detail {
namespace {

void scalar_quantize_x(const float* x, int64_t k, int64_t r0, int64_t r1, int8_t* q, float* d, int32_t* sum) {
  const int64_t blocks = q8_blocks(k);
  for (int64_t i = r0; i < r1; ++i)
    quantize_row_q8(x + i * k, k, q + i * blocks * kQ8Block, d + i * blocks, sum + i * blocks);
}

void scalar_gemm(const Q8Activations& xa, int64_t m, const Q8Matrix& w, const float* bias, int64_t p0, int64_t p1,
                 float* y) {
  const int64_t blocks = xa.blocks, j_end = std::min(p1 * kQ8PanelRows, w.n);
  for (int64_t j = p0 * kQ8PanelRows; j < j_end; ++j) {
    const int64_t panel = j / kQ8PanelRows, r = j % kQ8PanelRows;  // the scale's place
    for (int64_t i = 0; i < m; ++i) {
      const int8_t* xq = xa.q + i * blocks * kQ8Block;
      float out = 0;
      for (int64_t b0 = 0; b0 < blocks; b0 += kQ8ChunkBlocks) {
        float acc = 0;
        for (int64_t b = b0; b < std::min(b0 + kQ8ChunkBlocks, blocks); ++b) {
          int32_t s = 0;
          for (int64_t c = 0; c < kQ8Block; ++c) s += quant_code(w, j, b * kQ8Block + c) * xq[b * kQ8Block + c];
          const float dw = f16_to_f32(w.scales[(panel * blocks + b) * kQ8PanelRows + r]);
          acc = std::fma(static_cast<float>(s), dw * xa.d[i * blocks + b], acc);
        }
        out = b0 == 0 ? acc : out + acc;
      }
      if (bias) out += bias[j];
      y[i * w.n + j] = out;
    }
  }
}

}  // namespace

const Q8Kernels& scalar_q8_kernels() {
  static const Q8Kernels kernels = {.name = "scalar", .quantize_x = scalar_quantize_x, .gemm = scalar_gemm};
  return kernels;
}

}  // namespace hotswap::kernels::detail
