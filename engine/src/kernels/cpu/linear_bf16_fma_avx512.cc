// LinearPrecision::kBf16Dot's blocked form (m >= kBf16DotMinRows, no AMX) computed with
// float32 FMAs instead of vdpbf16ps, to the same bits. Some CPUs run vdpbf16ps at a quarter of
// the FMA rate (an Emerald Rapids guest without AMX: 1.3 G instructions/s per core against 5.2
// G FMAs), so the dot-product instruction does half the work two FMAs do in its time; others
// (Zen 5) run it at the FMA rate, twice the work. bf16_gemm_form() (cpu/isa.cc) measures which
// once.
//
// Why the bits are the same: vdpbf16ps adds, per lane, the product of the odd elements of a
// pair and then that of the even ones to the accumulator, each product exact (8-bit mantissas)
// and each addition rounded to nearest even, with denormal inputs read as zero and denormal
// results flushed (Intel SDM). Two FMAs in that order (odd, then even) with MXCSR's DAZ and FTZ
// set do exactly that; checked on 3.2 million random pairs (denormals and large exponents
// included), and by kernels_test's Bf16Dot forms test against the instruction. Everything
// else -- the 256-element k blocks summed from zero, y = y + block, the bias after the last
// block -- is gemm_tile_bf16's (cpu/linear_avx512.cc).
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "kernels/cpu/bf16_pairs.h"
#include "kernels/cpu/linear_kernels.h"
#include "kernels/cpu/scratch.h"

#pragma GCC push_options
// GCC 12's AVX-512 intrinsics self-initialise their "undefined" operands.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,avx2")

#define HS_INLINE inline __attribute__((always_inline))

namespace hotswap::kernels::detail {
namespace {

#include "kernels/cpu/bf16_block_store.inc"

constexpr int kVecs = 2;                   // 16-column vectors per register tile
constexpr int64_t kTileCols = 16 * kVecs;  // W rows per tile: its float32 block is 32 KiB (L1)
constexpr int kRows = 12;                  // x rows per register tile, at most (24 accumulators)
constexpr int64_t kKc = kBf16Kc;           // the vdpbf16ps form's k blocks (bf16_pairs.h)
constexpr int64_t kChunkCols = 256;        // columns per widening of x
constexpr unsigned kFtzDaz = 0x8040;       // MXCSR flush-to-zero | denormals-are-zero

// Keeps the compiler from moving the FMAs that produce or consume v across an MXCSR change.
HS_INLINE void pin(__m512& v) { asm volatile("" : "+v"(v)); }

// wf[e * kTileCols + 16v + t], e < 2 * pairs: element e of the block in vdpbf16ps's order
// (pair q: element 2q + 1, then 2q) of W row j + 16v + t as float32, from the pair tile wp.
void widen_w_tile(const uint32_t* wp, int64_t pairs, float* wf) {
  const __m512i high = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
  for (int64_t q = 0; q < pairs; ++q) {
    for (int v = 0; v < kVecs; ++v) {
      const __m512i p = _mm512_load_si512(wp + (q * kVecs + v) * 16);
      _mm512_store_ps(wf + 2 * q * kTileCols + 16 * v, _mm512_castsi512_ps(_mm512_and_si512(p, high)));
      _mm512_store_ps(wf + (2 * q + 1) * kTileCols + 16 * v, _mm512_castsi512_ps(_mm512_slli_epi32(p, 16)));
    }
  }
}

// xf[r * kKc + e] = element e, in the same order, of bf16 row r of xb (from the block's start)
// as float32, r < rows; whole lines of 16 pairs (xb rows are zero-padded to them).
void widen_x_rows(const uint16_t* xb, int64_t x_stride, int64_t rows, int64_t pairs, float* xf) {
  const __m512i high = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
  const __m512i first8 = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i last8 = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  for (int64_t r = 0; r < rows; ++r) {
    const uint16_t* src = xb + r * x_stride;
    float* dst = xf + r * kKc;
    for (int64_t q = 0; q < pairs; q += 16) {
      const __m512i p = _mm512_loadu_si512(src + 2 * q);
      const __m512 odd = _mm512_castsi512_ps(_mm512_and_si512(p, high));
      const __m512 even = _mm512_castsi512_ps(_mm512_slli_epi32(p, 16));
      _mm512_storeu_ps(dst + 2 * q, _mm512_permutex2var_ps(odd, first8, even));
      _mm512_storeu_ps(dst + 2 * q + 16, _mm512_permutex2var_ps(odd, last8, even));
    }
  }
}

// y[r][16v + t] for r < kR over `elems` elements of one k block, `cols` valid columns;
// first: y = block, else y += block; bias (last block only) added after: gemm_tile_bf16's
// contract, and its bits.
template <int kR>
void gemm_tile_fma(const float* xf, const float* wf, int64_t elems, float* y, int64_t ldy, int64_t cols, bool first,
                   const float* bias) {
  __m512 acc[kR][kVecs];
  const unsigned csr = _mm_getcsr();
  _mm_setcsr(csr | kFtzDaz);
#pragma GCC unroll 32
  for (int r = 0; r < kR; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) acc[r][v] = _mm512_setzero_ps(), pin(acc[r][v]);
  }
  for (int64_t e = 0; e < elems; ++e) {
    __m512 wv[kVecs];
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) wv[v] = _mm512_load_ps(wf + e * kTileCols + 16 * v);
#pragma GCC unroll 32
    for (int r = 0; r < kR; ++r) {
      const __m512 b = _mm512_set1_ps(xf[r * kKc + e]);
#pragma GCC unroll 4
      for (int v = 0; v < kVecs; ++v) acc[r][v] = _mm512_fmadd_ps(b, wv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 32
  for (int r = 0; r < kR; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) pin(acc[r][v]);
  }
  _mm_setcsr(csr);
  store_bf16_block<kR, kVecs>(acc, y, ldy, cols, first, bias);
}

template <int kR>
void gemm_rows_fma(int64_t rows, const float* xf, const float* wf, int64_t elems, float* y, int64_t ldy, int64_t cols,
                   bool first, const float* bias) {
  if constexpr (kR > 1) {
    if (rows < kR) return gemm_rows_fma<kR - 1>(rows, xf, wf, elems, y, ldy, cols, first, bias);
  }
  gemm_tile_fma<kR>(xf, wf, elems, y, ldy, cols, first, bias);
}

// Seconds for `iters` rounds of 12 independent vdpbf16ps (fma = false) or of the 24 FMAs that
// do the same pairs' work (fma = true).
double time_chains(bool fma, int64_t iters) {
  __m512 acc[24];
  for (__m512& a : acc) a = _mm512_setzero_ps();
  __m512 x = _mm512_set1_ps(1.0f);
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < iters; ++i) {
    if (fma) {
#pragma GCC unroll 24
      for (int c = 0; c < 24; ++c) acc[c] = _mm512_fmadd_ps(x, x, acc[c]);
    } else {
      const __m512bh b = reinterpret_cast<__m512bh>(_mm512_castps_si512(x));
#pragma GCC unroll 12
      for (int c = 0; c < 12; ++c) acc[c] = _mm512_dpbf16_ps(acc[c], b, b);
    }
    asm volatile("" : "+v"(x));
  }
  for (__m512& a : acc) asm volatile("" : : "v"(a));
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

void avx512_gemm_cols_bf16_fma(const uint16_t* xb, int64_t m, const WeightMatrix& w, const float* bias,
                               int64_t j_begin, int64_t j_end, float* y) {
  const int64_t k = w.k, x_stride = bf16_x_stride(k);
  constexpr int64_t kPairWords = kKc / 2 * kTileCols;  // the pair tile; its float32 block follows
  float* tiles = thread_scratch_as<float>(ScratchSlot::kGemmW, kPairWords + kKc * kTileCols);
  auto* wp = reinterpret_cast<uint32_t*>(tiles);
  float* wf = tiles + kPairWords;
  // Every row's k block widened once for kChunkCols columns (in L2), not once per tile.
  float* xf = thread_scratch_as<float>(ScratchSlot::kGemmC, static_cast<size_t>(m * kKc));
  const int64_t groups = (m + kRows - 1) / kRows;  // row groups as even as possible
  for (int64_t jc = j_begin; jc < j_end; jc += kChunkCols) {
    const int64_t chunk_end = std::min(jc + kChunkCols, j_end);
    for (int64_t c0 = 0; c0 < k; c0 += kKc) {
      const int64_t kc = std::min(kKc, k - c0), pairs = (kc + 1) / 2;
      widen_x_rows(xb + c0, x_stride, m, pairs, xf);
      const bool first = c0 == 0;
      for (int64_t j = jc; j < chunk_end; j += kTileCols) {
        const int64_t cols = std::min(kTileCols, chunk_end - j);
        pack_w_tile_bf16(w, j, cols, c0, kc, wp, kVecs);
        widen_w_tile(wp, pairs, wf);
        const float* b = c0 + kc >= k && bias ? bias + j : nullptr;
        for (int64_t g = 0, i0 = 0; g < groups; ++g) {
          const int64_t rows = (m - i0) / (groups - g);
          gemm_rows_fma<kRows>(rows, xf + i0 * kKc, wf, 2 * pairs, y + i0 * w.n + j, w.n, cols, first, b);
          i0 += rows;
        }
      }
    }
  }
}

bool avx512_bf16_dot_is_slow() {
  constexpr int64_t kIters = 1 << 16;  // ~0.5 ms a measurement
  double dot = 1e30, fma = 1e30;
  for (int round = 0; round < 3; ++round) {  // alternating, best of three each
    dot = std::min(dot, time_chains(false, kIters));
    fma = std::min(fma, time_chains(true, kIters));
  }
  // One vdpbf16ps does two FMAs' work: it is the slower way when it takes longer than two.
  return dot > 1.25 * fma;
}

}  // namespace hotswap::kernels::detail

#pragma GCC diagnostic pop
#pragma GCC pop_options
