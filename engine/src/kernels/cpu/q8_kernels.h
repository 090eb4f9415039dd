// The per-ISA building blocks of linear_q8 (kernels/q8.h; q8 and q4 weights); cpu/q8_linear.cc quantises x,
// splits W's panels over threads and calls these. Internal to kernels/.
//
// Every table computes, for each (x row i, W row j), per block b the exact integer
// s_b = sum q_w·q_x and then, block after block within a chunk of kQ8ChunkBlocks blocks,
//   acc = fma(float(s_b), d_w[j][b] * d_x[i][b], acc)            (acc from 0 per chunk)
//   y[i][j] = (first chunk ? acc : y[i][j] + acc) (+ bias[j] after the last chunk)
// so all ISAs give bitwise the same y.
#pragma once

#include <cstdint>

#include "kernels/q8.h"

namespace hotswap::kernels::detail {

// x quantised per row and block (kernels/q8.h quantize_row_q8), rows of `blocks` blocks.
struct Q8Activations {
  const int8_t* q = nullptr;      // [m][blocks * 32], zero past k
  const float* d = nullptr;       // [m][blocks]
  const int32_t* sum = nullptr;   // [m][blocks]: sum of the block's q (times the codes' offset: the correction)
  int64_t blocks = 0;
};

struct Q8Kernels {
  const char* name;
  // Rows [r0, r1) of x[., k] into xa's buffers (which the caller sized for every row).
  void (*quantize_x)(const float* x, int64_t k, int64_t r0, int64_t r1, int8_t* q, float* d, int32_t* sum);
  // y[i][j] for i < m and j in rows [16·p0, min(16·p1, n)) of W, in W's format.
  void (*gemm)(const Q8Activations& xa, int64_t m, const Q8Matrix& w, const float* bias, int64_t p0, int64_t p1,
               float* y);
};

const Q8Kernels& scalar_q8_kernels();
const Q8Kernels& avx2_q8_kernels();
const Q8Kernels& avx512_q8_kernels();  // AVX-512 VNNI (vpdpbusd)
// AVX-512 without VNNI (Skylake-X) runs the AVX2 table.
bool cpu_has_avx512_vnni();

}  // namespace hotswap::kernels::detail
