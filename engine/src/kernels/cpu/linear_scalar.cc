// Portable linear() building blocks: plain C++ compiled with the build's baseline flags, for
// CPUs without AVX2 and as a forced comparison point (HOTSWAP_ISA=scalar). Dot form only.
#include <algorithm>
#include <cstring>

#include "kernels/cpu/linear_kernels.h"

namespace hotswap::kernels::detail {
namespace {

constexpr int kRows = 4;  // W rows per pass: four independent sums hide the add latency

inline float load_weight(DType dtype, const void* base, int64_t i) {
  switch (dtype) {
    case DType::kBF16:
      return bf16_to_f32(static_cast<const uint16_t*>(base)[i]);
    case DType::kF16:
      return f16_to_f32(static_cast<const uint16_t*>(base)[i]);
    default: {
      float f;  // F32 data inside a safetensors file may be only 2-byte aligned
      std::memcpy(&f, static_cast<const uint8_t*>(base) + i * 4, sizeof f);
      return f;
    }
  }
}

int64_t scalar_dot_x_stride(int64_t k) {
  return k;
}

void scalar_prepare_dot_x(const float* x, int64_t m, int64_t k, DType, float* xd) {
  std::memcpy(xd, x, static_cast<size_t>(m * k) * sizeof(float));
}

// Widens W rows [j, j + rows) into `wf` once, then dots every x row against them.
void scalar_dot_rows(const float* xd, int64_t m, const WeightMatrix& w, const float* bias, int64_t j_begin,
                     int64_t j_end, float* y) {
  const int64_t k = w.k;
  // f16_to_f32 is slow; widening a block of rows once amortises it over all m rows.
  constexpr int64_t kChunk = 1024;
  float wf[kRows][kChunk];
  for (int64_t j = j_begin; j < j_end; j += kRows) {
    const int rows = static_cast<int>(std::min<int64_t>(kRows, j_end - j));
    for (int64_t i = 0; i < m; ++i)
      for (int r = 0; r < rows; ++r) y[i * w.n + j + r] = 0.0f;
    for (int64_t c0 = 0; c0 < k; c0 += kChunk) {
      const int64_t len = std::min(kChunk, k - c0);
      for (int r = 0; r < rows; ++r)
        for (int64_t c = 0; c < len; ++c) wf[r][c] = load_weight(w.dtype, w.data, (j + r) * k + c0 + c);
      for (int64_t i = 0; i < m; ++i) {
        const float* xr = xd + i * k + c0;
        float acc[kRows] = {};
        for (int64_t c = 0; c < len; ++c)
          for (int r = 0; r < rows; ++r) acc[r] += xr[c] * wf[r][c];
        for (int r = 0; r < rows; ++r) y[i * w.n + j + r] += acc[r];
      }
    }
    if (bias)
      for (int64_t i = 0; i < m; ++i)
        for (int r = 0; r < rows; ++r) y[i * w.n + j + r] += bias[j + r];
  }
}

}  // namespace

const LinearKernels& scalar_linear_kernels() {
  static const LinearKernels kernels = {
      .name = "scalar",
      .dot_x_stride = scalar_dot_x_stride,
      .prepare_dot_x = scalar_prepare_dot_x,
      .dot_rows = scalar_dot_rows,
  };
  return kernels;
}

}  // namespace hotswap::kernels::detail
