// The per-ISA building blocks of linear(); cpu/linear.cc picks a table at run time, splits
// the output columns over threads and calls these on each thread's range. Internal to kernels/.
//
// Two forms, chosen by the number of rows m of x:
//  * dot form (m == 1 decode and small m): y[i, j] is a vector dot product of x row i with
//    W row j, reduced horizontally at the end. W is read in place, once per call. x is first
//    copied by prepare_dot_x into a zero-padded, ISA-specific layout xd[m][dot_x_stride(k)].
//  * packed form (larger m): x is transposed into panels xp[panel][k][gemm_panel_rows]; each
//    W element is widened once to float32 and broadcast against a panel (register-blocked
//    gemm_panel_rows x gemm_tile_cols tiles), so W is read once for all m rows.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace hotswap::kernels::detail {

// W as the kernels see it: [n, k] row-major F32/BF16/F16; data may be only 2-byte aligned.
struct WeightMatrix {
  DType dtype;
  const void* data;
  int64_t n;
  int64_t k;
};

struct LinearKernels {
  const char* name;

  // ---- dot form ----
  int64_t (*dot_x_stride)(int64_t k);
  // xd[m][dot_x_stride(k)] from x[m][k]; the layout may depend on the weight dtype.
  void (*prepare_dot_x)(const float* x, int64_t m, int64_t k, DType w_dtype, float* xd);
  // y[i, j] = xd[i] · W[j] + bias[j] for all i < m, j in [j_begin, j_end). y is [m, w.n].
  void (*dot_rows)(const float* xd, int64_t m, const WeightMatrix& w, const float* bias, int64_t j_begin,
                   int64_t j_end, float* y);

  // ---- packed form (null where the ISA has none: the dispatcher then uses the dot form) ----
  int64_t gemm_panel_rows = 0;  // rows of x per packed panel
  int64_t gemm_tile_cols = 0;   // W rows per register tile; thread column ranges are multiples
  // Fills panels [panel_begin, panel_end) of xp[ceil(m / panel_rows)][k][panel_rows] with
  // x^T, zero-padding rows >= m.
  void (*pack_gemm_x)(const float* x, int64_t m, int64_t k, int64_t panel_begin, int64_t panel_end,
                      float* xp) = nullptr;
  // y[i, j] = x[i] · W[j] + bias[j] for all i < m, j in [j_begin, j_end), from packed x.
  void (*gemm_cols)(const float* xp, int64_t m, const WeightMatrix& w, const float* bias, int64_t j_begin,
                    int64_t j_end, float* y) = nullptr;

  // ---- bf16 dot-product form (LinearPrecision::kBf16Dot, BF16 weights; null if unsupported) ----
  int64_t bf16_tile_cols = 0;  // thread column ranges are multiples
  int64_t (*bf16_x_stride)(int64_t k) = nullptr;
  // xb[i][bf16_x_stride(k)] = x[i] rounded to bf16 (nearest even), zero-padded, rows [r0, r1).
  void (*pack_x_bf16)(const float* x, int64_t k, int64_t r0, int64_t r1, uint16_t* xb) = nullptr;
  // y[i, j] = xb[i] · W[j] + bias[j] for all i < m, j in [j_begin, j_end); every y[i, j] is
  // computed the same way whatever m is.
  void (*gemm_cols_bf16)(const uint16_t* xb, int64_t m, const WeightMatrix& w, const float* bias,
                         int64_t j_begin, int64_t j_end, float* y) = nullptr;
  // The same for m < kBf16DotMinRows (decode): W streamed row after row, read once.
  void (*gemv_bf16)(const uint16_t* xb, int64_t m, const WeightMatrix& w, const float* bias, int64_t j_begin,
                    int64_t j_end, float* y) = nullptr;
};

const LinearKernels& scalar_linear_kernels();
const LinearKernels& avx2_linear_kernels();
const LinearKernels& avx512_linear_kernels();

}  // namespace hotswap::kernels::detail
