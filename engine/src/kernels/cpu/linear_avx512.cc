// AVX-512 linear() kernels (F/BW/VL + FMA/F16C; AVX512_BF16 for LinearPrecision::kBf16Dot).
// The target pragma comes after every #include, so no inline function from a header is
// compiled for AVX-512; the code here runs only through avx512_linear_kernels(), which
// cpu/linear.cc calls after cpu/isa.cc has checked the CPU.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/bf16_pairs.h"
#include "kernels/cpu/linear_kernels.h"
#include "kernels/cpu/scratch.h"

#pragma GCC push_options
// GCC 12's AVX-512 intrinsics self-initialise their "undefined" operands, which -Wuninitialized
// reports at every inlined use.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,f16c,avx2,bmi,bmi2")

#define HS_INLINE inline __attribute__((always_inline))

namespace hotswap::kernels::detail {
namespace {

struct Avx512 {
  using V = __m512;
  static constexpr int kLanes = 16;
  static constexpr int kGemvRows = 8;
  static constexpr int kDotRows = 6;
  static constexpr int kDotMaxXRows = 4;
  static constexpr int kPanelVecs = 2;
  static constexpr int kTileCols = 12;

  static HS_INLINE V zero() { return _mm512_setzero_ps(); }
  static HS_INLINE V load(const float* p) { return _mm512_load_ps(p); }
  static HS_INLINE V loadu(const float* p) { return _mm512_loadu_ps(p); }
  static HS_INLINE void store(float* p, V v) { _mm512_store_ps(p, v); }
  static HS_INLINE void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
  static HS_INLINE V set1(float f) { return _mm512_set1_ps(f); }
  static HS_INLINE V add(V a, V b) { return _mm512_add_ps(a, b); }
  static HS_INLINE V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static HS_INLINE float reduce_add(V v) { return _mm512_reduce_add_ps(v); }
  static HS_INLINE V load_partial(const float* p, int count) {
    return _mm512_maskz_loadu_ps(mask16(count), p);
  }
  static HS_INLINE void store_partial(float* p, V v, int count) {
    _mm512_mask_storeu_ps(p, mask16(count), v);
  }

  // In place: r[c][t] becomes r[t][c]. Unpacks within 128-bit lanes, then 4-float groups,
  // then 128-bit lanes twice (64 shuffles for 256 floats).
  static HS_INLINE void transpose(V r[16]) {
    V t[16], u[16];
    for (int a = 0; a < 8; ++a) {
      t[2 * a] = _mm512_unpacklo_ps(r[2 * a], r[2 * a + 1]);
      t[2 * a + 1] = _mm512_unpackhi_ps(r[2 * a], r[2 * a + 1]);
    }
    // u[4b + c], 128-bit lane l: rows 4b..4b+3 of column 4l + c.
    for (int b = 0; b < 4; ++b) {
      u[4 * b + 0] = _mm512_shuffle_ps(t[4 * b], t[4 * b + 2], 0x44);
      u[4 * b + 1] = _mm512_shuffle_ps(t[4 * b], t[4 * b + 2], 0xee);
      u[4 * b + 2] = _mm512_shuffle_ps(t[4 * b + 1], t[4 * b + 3], 0x44);
      u[4 * b + 3] = _mm512_shuffle_ps(t[4 * b + 1], t[4 * b + 3], 0xee);
    }
    for (int c = 0; c < 4; ++c) {
      const V v_lo = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88),
              w_lo = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xdd);
      const V v_hi = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
      const V w_hi = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xdd);
      r[c] = _mm512_shuffle_f32x4(v_lo, v_hi, 0x88);
      r[4 + c] = _mm512_shuffle_f32x4(w_lo, w_hi, 0x88);
      r[8 + c] = _mm512_shuffle_f32x4(v_lo, v_hi, 0xdd);
      r[12 + c] = _mm512_shuffle_f32x4(w_lo, w_hi, 0xdd);
    }
  }

  static HS_INLINE __mmask16 mask16(int n) {
    return n >= 16 ? static_cast<__mmask16>(0xffff) : n <= 0 ? 0 : static_cast<__mmask16>((1u << n) - 1);
  }
  // BF16 pairs in 32-bit lanes -> even elements (low halves) and odd elements (high halves).
  static HS_INLINE void split_bf16(__m512i v, V& even, V& odd) {
    even = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    odd = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(static_cast<int>(0xffff0000u))));
  }

  template <DType D>
  static HS_INLINE void load_step(const uint8_t* p, V& lo, V& hi) {
    if constexpr (D == DType::kF32) {
      lo = _mm512_loadu_ps(p);
      hi = _mm512_loadu_ps(p + 64);
    } else if constexpr (D == DType::kF16) {
      lo = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
      hi = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32)));
    } else {
      split_bf16(_mm512_loadu_si512(p), lo, hi);
    }
  }
  // Masked loads: lanes past rem are zero and never touch memory (no fault past the end).
  template <DType D>
  static HS_INLINE void load_step_partial(const uint8_t* p, int rem, V& lo, V& hi) {
    if constexpr (D == DType::kF32) {
      lo = _mm512_maskz_loadu_ps(mask16(rem), p);
      hi = _mm512_maskz_loadu_ps(mask16(rem - 16), p + 64);
    } else if constexpr (D == DType::kF16) {
      lo = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask16(rem), p));
      hi = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask16(rem - 16), p + 32));
    } else {
      split_bf16(_mm512_maskz_loadu_epi16(static_cast<__mmask32>((1u << rem) - 1), p), lo, hi);
    }
  }
  template <DType D>
  static HS_INLINE V widen(const uint8_t* p) {
    if constexpr (D == DType::kF32) {
      return _mm512_loadu_ps(p);
    } else if constexpr (D == DType::kF16) {
      return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    } else {
      const __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
      return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    }
  }
  template <DType D>
  static HS_INLINE V widen_partial(const uint8_t* p, int rem) {
    if constexpr (D == DType::kF32) {
      return _mm512_maskz_loadu_ps(mask16(rem), p);
    } else if constexpr (D == DType::kF16) {
      return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask16(rem), p));
    } else {
      const __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask16(rem), p));
      return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    }
  }
};

#include "kernels/cpu/linear_simd.inc"

// ------------------------------------------------------------------------------------------
// LinearPrecision::kBf16Dot: vdpbf16ps multiplies bf16 pairs and adds both products into
// float32 lanes (twice the FMA rate). The vector lanes hold 16 output columns: a W tile of
// kBf16TileCols rows x one k block is transposed once into pairs wp[k_pair][column][2] (so
// each W element is rearranged once per call, whatever m), and each x pair x[i][2q, 2q + 1]
// is one 32-bit broadcast against kBf16Vecs column vectors. A register tile of up to
// kBf16Rows x rows x kBf16Vecs vectors holds 24 accumulators (vdpbf16ps latency 6 x 2
// pipes needs >= 12) for 10 loads per 24 vdpbf16ps; the result lands in y row-major, with
// no transpose.
//
// Row independence: y[i][j] is summed the same way for every m — per k block from zero,
// pairs in order, then y = y + block (+ bias after the last block) — so a row's result does
// not depend on the other rows in the call.

constexpr int kBf16Rows = 6;                           // x rows per register tile, at most
constexpr int64_t kBf16TileWords = kBf16Kc / 2 * kBf16TileCols;  // uint32 pairs per packed tile
// Prefetch distance in packed tiles: fetched one tile ahead, W arrived late (Llama-3.2-1B batch-16
// decode step, 1 thread: 250 ms; 2 ahead: 195 ms; 4: 200 ms; 8: 225 ms).
constexpr int64_t kBf16PrefetchBlocks = 2;

// One 64-byte line of xb: the 32 floats at src, of which the first `count` (> 0) are x's,
// rounded to bf16 (nearest even); the rest zero.
HS_INLINE __m512i bf16_line(const float* src, int64_t count) {
  const int n = static_cast<int>(std::min<int64_t>(count, 32));
  const __m512 lo = _mm512_maskz_loadu_ps(Avx512::mask16(n), src);
  const __m512 hi = _mm512_maskz_loadu_ps(Avx512::mask16(n - 16), src + 16);
  return reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo));
}

// xb[i][0, stride) = bf16(x[i]) rounded to nearest even, zero-padded, for rows [r0, r1).
void avx512_pack_x_bf16(const float* x, int64_t k, int64_t r0, int64_t r1, uint16_t* xb) {
  const int64_t stride = bf16_x_stride(k);
  for (int64_t i = r0; i < r1; ++i)
    for (int64_t c = 0; c < stride; c += 32) _mm512_store_si512(xb + i * stride + c, bf16_line(x + i * k + c, k - c));
}

}  // namespace

// The same rounding into the AMX tile order (cpu/bf16_pairs.h): row i's line s is the A tile
// row (i % 16) of block i / 16, step s; rows from m are zero.
void amx_pack_x(const float* x, int64_t m, int64_t k, int64_t r_begin, int64_t r_end, uint16_t* xt) {
  const int64_t lines = bf16_x_stride(k) / 32, tile_elems = kAmxTileRows * 32;
  for (int64_t i = r_begin; i < r_end; ++i) {
    uint16_t* row = xt + (i / kAmxTileRows) * lines * tile_elems + (i % kAmxTileRows) * 32;
    for (int64_t s = 0; s < lines; ++s)
      _mm512_store_si512(row + s * tile_elems, i < m ? bf16_line(x + i * k + s * 32, k - s * 32) : _mm512_setzero_si512());
  }
}

namespace {

#include "kernels/cpu/bf16_block_store.inc"

// y[i0 + r][j + 16v + t] for r < kR, over the pairs of one k block, `cols` valid columns.
// first: y = block, else y += block; bias (last block only) is added after.
template <int kR>
void gemm_tile_bf16(const uint16_t* xb, int64_t x_stride, const uint32_t* wp, int64_t pairs, float* y,
                    int64_t ldy, int64_t cols, bool first, const float* bias, TilePrefetch& next) {
  TilePrefetch prefetch = next;  // a local copy stays in registers
  __m512 acc[kR][kBf16Vecs];
#pragma GCC unroll 32
  for (int r = 0; r < kR; ++r) {
#pragma GCC unroll 32
    for (int v = 0; v < kBf16Vecs; ++v) acc[r][v] = _mm512_setzero_ps();
  }
  for (int64_t q = 0; q < pairs; ++q) {
    prefetch.step();
    prefetch.step();
    __m512bh wv[kBf16Vecs];
#pragma GCC unroll 32
    for (int v = 0; v < kBf16Vecs; ++v)
      wv[v] = reinterpret_cast<__m512bh>(_mm512_load_si512(wp + (q * kBf16Vecs + v) * 16));
#pragma GCC unroll 32
    for (int r = 0; r < kR; ++r) {
      uint32_t pair;
      std::memcpy(&pair, xb + r * x_stride + 2 * q, sizeof pair);
      const __m512bh b = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(pair)));
#pragma GCC unroll 32
      for (int v = 0; v < kBf16Vecs; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], wv[v], b);
    }
  }
  next = prefetch;
  store_bf16_block<kR, kBf16Vecs>(acc, y, ldy, cols, first, bias);
}

template <int kR>
void gemm_rows_bf16(int64_t rows, const uint16_t* xb, int64_t x_stride, const uint32_t* wp, int64_t pairs,
                    float* y, int64_t ldy, int64_t cols, bool first, const float* bias, TilePrefetch& prefetch) {
  if constexpr (kR > 1) {
    if (rows < kR)
      return gemm_rows_bf16<kR - 1>(rows, xb, x_stride, wp, pairs, y, ldy, cols, first, bias, prefetch);
  }
  gemm_tile_bf16<kR>(xb, x_stride, wp, pairs, y, ldy, cols, first, bias, prefetch);
}

// Below kBf16DotMinRows rows (decode): W is read once, row after row, as one sequential
// stream per thread, each 32-element chunk multiplied with vdpbf16ps against every x row
// (which stays in L1). Memory-bound: the point is the access pattern and few instructions.
template <int kM>
void gemv_rows_bf16(const uint16_t* xb, int64_t x_stride, const WeightMatrix& w, const float* bias,
                    int64_t j_begin, int64_t j_end, float* y) {
  constexpr int kAcc = kM == 1 ? 4 : 2;  // chains per x row to cover vdpbf16ps latency
  const int64_t k = w.k, full = k / 32 * 32;
  const auto* base = static_cast<const uint16_t*>(w.data);
  for (int64_t j = j_begin; j < j_end; ++j) {
    const uint16_t* wr = base + j * k;
    __m512 acc[kM][kAcc];
#pragma GCC unroll 32
    for (int i = 0; i < kM; ++i)
#pragma GCC unroll 8
      for (int a = 0; a < kAcc; ++a) acc[i][a] = _mm512_setzero_ps();
    int64_t c = 0;
    for (; c + 32 * kAcc <= full; c += 32 * kAcc) {
      _mm_prefetch(reinterpret_cast<const char*>(wr + c) + 1024, _MM_HINT_T0);
#pragma GCC unroll 8
      for (int a = 0; a < kAcc; ++a) {
        const __m512bh wv = reinterpret_cast<__m512bh>(_mm512_loadu_si512(wr + c + 32 * a));
#pragma GCC unroll 32
        for (int i = 0; i < kM; ++i)
          acc[i][a] = _mm512_dpbf16_ps(
              acc[i][a], reinterpret_cast<__m512bh>(_mm512_load_si512(xb + i * x_stride + c + 32 * a)), wv);
      }
    }
    for (; c < k; c += 32) {  // whole chunks left, then the masked tail (x is zero-padded)
      const __mmask32 mask = k - c >= 32 ? ~__mmask32{0} : (__mmask32{1} << (k - c)) - 1;
      const __m512bh wv = reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(mask, wr + c));
#pragma GCC unroll 32
      for (int i = 0; i < kM; ++i)
        acc[i][0] = _mm512_dpbf16_ps(acc[i][0], reinterpret_cast<__m512bh>(_mm512_load_si512(xb + i * x_stride + c)),
                                     wv);
    }
#pragma GCC unroll 32
    for (int i = 0; i < kM; ++i) {
      __m512 sum = acc[i][0];
#pragma GCC unroll 8
      for (int a = 1; a < kAcc; ++a) sum = _mm512_add_ps(sum, acc[i][a]);
      y[i * w.n + j] = _mm512_reduce_add_ps(sum) + (bias ? bias[j] : 0.0f);
    }
  }
}

template <int kM>
void gemv_rows_bf16_m(const uint16_t* xb, int64_t m, int64_t x_stride, const WeightMatrix& w, const float* bias,
                      int64_t j_begin, int64_t j_end, float* y) {
  if constexpr (kM > 1) {
    if (m < kM) return gemv_rows_bf16_m<kM - 1>(xb, m, x_stride, w, bias, j_begin, j_end, y);
  }
  gemv_rows_bf16<kM>(xb, x_stride, w, bias, j_begin, j_end, y);
}

// y[i][j] for i < m < 8, j in [j_begin, j_end) from xb[m][bf16_x_stride(k)].
void avx512_gemv_bf16(const uint16_t* xb, int64_t m, const WeightMatrix& w, const float* bias, int64_t j_begin,
                      int64_t j_end, float* y) {
  const int64_t x_stride = bf16_x_stride(w.k);
  for (int64_t i0 = 0; i0 < m; i0 += 7) {
    const int64_t mr = std::min<int64_t>(7, m - i0);
    gemv_rows_bf16_m<7>(xb + i0 * x_stride, mr, x_stride, w, bias, j_begin, j_end, y + i0 * w.n);
  }
}

// y[i][j] for i < m, j in [j_begin, j_end) from xb[m][bf16_x_stride(k)].
void avx512_gemm_cols_bf16(const uint16_t* xb, int64_t m, const WeightMatrix& w, const float* bias,
                           int64_t j_begin, int64_t j_end, float* y) {
  const int64_t k = w.k, x_stride = bf16_x_stride(k);
  auto* wp = thread_scratch_as<uint32_t>(ScratchSlot::kGemmW, kBf16TileWords);
  // Row groups as even as possible: no group below 4 rows (16 accumulators) when m >= 8.
  const int64_t groups = (m + kBf16Rows - 1) / kBf16Rows;
  const int64_t row_bytes = k * 2;
  for (int64_t j = j_begin; j < j_end; j += kBf16TileCols) {
    const int64_t cols = std::min(kBf16TileCols, j_end - j);
    for (int64_t c0 = 0; c0 < k; c0 += kBf16Kc) {
      const int64_t kc = std::min(kBf16Kc, k - c0), pairs = (kc + 1) / 2;
      pack_w_tile_bf16(w, j, cols, c0, kc, wp, kBf16Vecs);
      // Fetch the block packed kBf16PrefetchBlocks later into L2 while this one computes:
      // each row segment is short, so the hardware prefetcher picks it up late, and the
      // rows are often on different pages.
      const int64_t blocks = (k + kBf16Kc - 1) / kBf16Kc, at = c0 / kBf16Kc + kBf16PrefetchBlocks;
      const int64_t next_j = j + at / blocks * kBf16TileCols, next_c0 = at % blocks * kBf16Kc;
      const int64_t next_rows = std::min(kBf16TileCols, w.n - next_j);
      TilePrefetch prefetch;
      if (next_rows > 0) {
        const int64_t segment = std::min(kBf16Kc, k - next_c0) * 2;
        const auto* first = static_cast<const uint8_t*>(w.data) + next_j * row_bytes + next_c0 * 2;
        prefetch = {first, first + segment, row_bytes, segment, next_rows};
      }
      const bool first = c0 == 0;
      const float* b = c0 + kc >= k && bias ? bias + j : nullptr;
      for (int64_t g = 0, i0 = 0; g < groups; ++g) {
        const int64_t rows = (m - i0) / (groups - g);
        gemm_rows_bf16<kBf16Rows>(rows, xb + i0 * x_stride + c0, x_stride, wp, pairs, y + i0 * w.n + j, w.n,
                                  cols, first, b, prefetch);
        i0 += rows;
      }
    }
  }
}

}  // namespace

void pack_w_tile_bf16(const WeightMatrix& w, int64_t j, int64_t rows, int64_t c0, int64_t kc, uint32_t* wp,
                      int groups) {
  const auto* base = static_cast<const uint16_t*>(w.data);
  const int64_t pairs = (kc + 1) / 2;
  for (int v = 0; v < groups; ++v) {
    const int64_t vrows = std::clamp<int64_t>(rows - 16 * v, 0, 16);
    for (int64_t q0 = 0; q0 < pairs; q0 += 16) {
      const int64_t rem = kc - 2 * q0;  // elements left in the block
      const __mmask32 mask = rem >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((1u << rem) - 1);
      __m512 r[16];
      for (int t = 0; t < 16; ++t) {
        const uint16_t* src = base + (j + 16 * v + t) * w.k + c0 + 2 * q0;
        r[t] = t < vrows ? _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(mask, src)) : _mm512_setzero_ps();
      }
      Avx512::transpose(r);
      const int64_t count = std::min<int64_t>(16, pairs - q0);
      for (int64_t t = 0; t < count; ++t) _mm512_store_ps(wp + ((q0 + t) * groups + v) * 16, r[t]);
    }
  }
}

}  // namespace hotswap::kernels::detail

#pragma GCC diagnostic pop
#pragma GCC pop_options

namespace hotswap::kernels::detail {

const LinearKernels& avx512_linear_kernels() {
  static const LinearKernels kernels = {
      .name = "avx512",
      .dot_x_stride = simd_dot_x_stride<Avx512>,
      .prepare_dot_x = simd_prepare_dot_x<Avx512>,
      .dot_rows = simd_dot_rows<Avx512>,
      .gemm_panel_rows = kPanelRows<Avx512>,
      .gemm_tile_cols = Avx512::kTileCols,
      .pack_gemm_x = simd_pack_gemm_x<Avx512>,
      .gemm_cols = simd_gemm_cols<Avx512>,
      .bf16_tile_cols = kBf16TileCols,
      .bf16_x_stride = bf16_x_stride,
      .pack_x_bf16 = avx512_pack_x_bf16,
      .gemm_cols_bf16 = avx512_gemm_cols_bf16,
      .gemv_bf16 = avx512_gemv_bf16,
  };
  return kernels;
}

}  // namespace hotswap::kernels::detail
