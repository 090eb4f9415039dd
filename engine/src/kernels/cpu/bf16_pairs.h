// The layout both bf16-product forms of linear() read W in (LinearPrecision::kBf16Dot, m >=
// kBf16DotMinRows): a tile of kBf16TileCols W rows transposed into k-pairs, so a 64-byte line
// holds one pair of k for 16 output columns. vdpbf16ps (cpu/linear_avx512.cc) loads a line as
// one vector; AMX (cpu/linear_amx.cc) loads 16 consecutive pairs of a column group as one B
// tile. Internal to kernels/; AVX-512 code only.
#pragma once

#include <cstdint>

#include "kernels/bf16_packed.h"
#include "kernels/cpu/linear_kernels.h"

namespace hotswap::kernels::detail {

inline constexpr int kBf16Vecs = 4;                       // 16-column groups per packed tile
inline constexpr int64_t kBf16TileCols = 16 * kBf16Vecs;  // W rows per packed tile
// k per block of the blocked forms (vdpbf16ps: the packed tile is 32 KiB, L1): each block is
// summed from zero and added to y, so both forms must use the same blocks for the same bits.
inline constexpr int64_t kBf16Kc = 256;

// Elements per row of bf16-rounded x (xb): k rounded up to whole 64-byte lines, zero-padded.
inline int64_t bf16_x_stride(int64_t k) {
  return (k + 31) / 32 * 32;
}

// wp[(q * groups + v) * 16 + t] = the pair W[j + 16v + t][c0 + 2q, c0 + 2q + 1] for v < groups
// (kBf16Vecs per call-time tile, 2 in kernels/bf16_packed.h's), zero for rows >= `rows` and
// elements past kc; q < ceil(kc / 2). wp 64-byte aligned. Defined in cpu/linear_avx512.cc.
void pack_w_tile_bf16(const WeightMatrix& w, int64_t j, int64_t rows, int64_t c0, int64_t kc, uint32_t* wp,
                      int groups);

// gemm_cols_bf16's contract and bits with float32 FMAs in vdpbf16ps's order (odd element of a
// pair first, denormals zero): faster where vdpbf16ps runs below half the FMA rate. And the
// measurement that says so: true when a vdpbf16ps takes longer than the two FMAs it stands
// for. Defined in cpu/linear_bf16_fma_avx512.cc.
void avx512_gemm_cols_bf16_fma(const uint16_t* xb, int64_t m, const WeightMatrix& w, const float* bias,
                               int64_t j_begin, int64_t j_end, float* y);
bool avx512_bf16_dot_is_slow();
// Below this many rows the FMA form's extra pass over W (widening it to float32) costs more
// than its faster products save, and the vdpbf16ps form runs instead (kernels_bench, 2 threads,
// on the guest above: m = 16 1.2 ms against 1.4-1.8 ms, m = 64 10-13 ms against 15-16 ms).
inline constexpr int64_t kBf16FmaMinRows = 64;

// The AMX forms take x as bf16_x_stride(k) elements a row (pack_x_bf16) up to 16 rows and,
// beyond, in tile order ("AmxX"): round_up(m, kAmxRowBlock) rows, those past m zero, stored as
// 16-row blocks, each step after step, each step's 16 rows x 32 elements one 1 KiB A tile:
// x[i][c] at xt[((i / 16) * steps + c / 32) * 512 + (i % 16) * 32 + c % 32], steps =
// bf16_x_stride(k) / 32. amx_pack_x writes rows [r_begin, r_end) of that (zero from row m).
inline constexpr int64_t kAmxTileRows = 16;  // rows of an AMX A or C tile
inline constexpr int64_t kAmxRowBlock = 32;
constexpr bool amx_x_in_tile_order(int64_t m) {
  return m > kAmxTileRows;
}
// Defined in cpu/linear_avx512.cc, beside pack_x_bf16 (the same rounding, line by line).
void amx_pack_x(const float* x, int64_t m, int64_t k, int64_t r_begin, int64_t r_end, uint16_t* xt);

// AMX form of gemm_cols_bf16 (same contract, LinearKernels, but x as above). Needs amx_enabled().
void amx_gemm_cols_bf16(const uint16_t* xb, int64_t m, const WeightMatrix& w, const float* bias, int64_t j_begin,
                        int64_t j_end, float* y);

// The same from W packed at load (kernels/bf16_packed.h: tiles of kPackedTileCols columns),
// for column tiles [tile_begin, tile_end); y is [m, n].
inline constexpr int64_t kPackedTileCols = 32;
void amx_gemm_packed_bf16(const uint16_t* xb, int64_t m, const uint32_t* packed, int64_t n, int64_t k,
                          const float* bias, int64_t tile_begin, int64_t tile_end, float* y);

// Thread `index` of `count`'s share of linear_bf16_packed: its nearly equal run of whole column
// tiles (the split linear_bf16_packed and linear_bf16_packed_team both use).
void amx_packed_share(const uint16_t* xb, int64_t m, const Bf16Packed& w, const float* bias, float* y, int index,
                      int count);

}  // namespace hotswap::kernels::detail
