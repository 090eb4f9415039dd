// AVX-512 linear() kernels (F/BW/VL + FMA/F16C; AVX512_BF16 for LinearPrecision::kBf16Dot).
// The target pragma comes after every #include, so no inline function from a header is
// compiled for AVX-512; the code here runs only through avx512_linear_kernels(), which
// cpu/linear.cc calls after cpu/isa.cc has checked the CPU.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

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
// LinearPrecision::kBf16Dot: the packed form with x rounded to bf16 and vdpbf16ps, which
// multiplies bf16 pairs and adds both products into float32 lanes (twice the FMA rate).
// x panels hold k-pairs: xp[panel][k_pairs][32 rows][2]; a W pair w[j][2q, 2q + 1] is one
// 32-bit broadcast straight from the bf16 tile, so W needs no widening at all.

constexpr int64_t kWStrideBf16 = kKcMax + 32;  // uint16 elements per W tile row

void avx512_pack_gemm_x_bf16(const float* x, int64_t m, int64_t k, int64_t panel_begin, int64_t panel_end,
                             uint16_t* xp) {
  constexpr int64_t panel_rows = kPanelRows<Avx512>;
  const int64_t k_pairs = (k + 1) / 2;
  for (int64_t p = panel_begin; p < panel_end; ++p) {
    uint16_t* dst = xp + p * k_pairs * panel_rows * 2;
    const int64_t i0 = p * panel_rows, rows = std::min(panel_rows, m - i0);
    for (int64_t r = 0; r < panel_rows; ++r) {
      const float* src = x + (i0 + r) * k;
      for (int64_t q = 0; q < k_pairs; ++q) {
        const int64_t c = 2 * q;
        uint16_t* d = dst + (q * panel_rows + r) * 2;
        d[0] = r < rows ? f32_to_bf16(src[c]) : 0;
        d[1] = r < rows && c + 1 < k ? f32_to_bf16(src[c + 1]) : 0;
      }
    }
  }
}

template <int kVecs>
void gemm_tile_bf16(const uint16_t* xp, const uint16_t* wt, int64_t k_pairs, float* ct, int64_t ldc,
                    bool accumulate) {
  constexpr int64_t panel_rows = kPanelRows<Avx512>;
  constexpr int kCols = Avx512::kTileCols;
  __m512 acc[kCols][kVecs];
#pragma GCC unroll 32
  for (int r = 0; r < kCols; ++r) {
#pragma GCC unroll 32
    for (int v = 0; v < kVecs; ++v) acc[r][v] = _mm512_setzero_ps();
  }
  for (int64_t q = 0; q < k_pairs; ++q) {
    __m512bh xv[kVecs];
#pragma GCC unroll 32
    for (int v = 0; v < kVecs; ++v)
      xv[v] = reinterpret_cast<__m512bh>(_mm512_load_si512(xp + (q * panel_rows + v * 16) * 2));
#pragma GCC unroll 32
    for (int r = 0; r < kCols; ++r) {
      uint32_t pair;
      std::memcpy(&pair, wt + r * kWStrideBf16 + 2 * q, sizeof pair);
      const __m512bh b = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(pair)));
#pragma GCC unroll 32
      for (int v = 0; v < kVecs; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], xv[v], b);
    }
  }
#pragma GCC unroll 32
  for (int r = 0; r < kCols; ++r) {
#pragma GCC unroll 32
    for (int v = 0; v < kVecs; ++v) {
      float* p = ct + r * ldc + v * 16;
      _mm512_store_ps(p, accumulate ? _mm512_add_ps(_mm512_load_ps(p), acc[r][v]) : acc[r][v]);
    }
  }
}

void avx512_gemm_cols_bf16(const uint16_t* xp, int64_t m, const WeightMatrix& w, const float* bias,
                           int64_t j_begin, int64_t j_end, float* y) {
  constexpr int64_t panel_rows = kPanelRows<Avx512>, tile = Avx512::kTileCols, chunk = kColChunk<Avx512>;
  const int64_t k = w.k, k_pairs = (k + 1) / 2;
  const int64_t panels = (m + panel_rows - 1) / panel_rows, m_pad = panels * panel_rows;
  const int64_t kc_block = std::clamp<int64_t>(kXBlockBytes / (m_pad * 2) / 16 * 16, 64, kKcMax);
  auto* wt = thread_scratch_as<uint16_t>(ScratchSlot::kGemmW, tile * kWStrideBf16);
  float* ct = thread_scratch_as<float>(ScratchSlot::kGemmC, static_cast<size_t>(chunk * m_pad));
  const auto* base = static_cast<const uint16_t*>(w.data);
  for (int64_t jc = j_begin; jc < j_end; jc += chunk) {
    const int64_t nc = std::min(chunk, j_end - jc);
    for (int64_t c0 = 0; c0 < k; c0 += kc_block) {
      const int64_t kc = std::min(kc_block, k - c0), kc_pairs = (kc + 1) / 2;
      for (int64_t jt = 0; jt < nc; jt += tile) {
        const int64_t rows = std::min(tile, nc - jt);
        for (int64_t r = 0; r < tile; ++r) {
          uint16_t* dst = wt + r * kWStrideBf16;
          if (r < rows) std::memcpy(dst, base + (jc + jt + r) * k + c0, static_cast<size_t>(kc) * 2);
          std::fill(dst + (r < rows ? kc : 0), dst + 2 * kc_pairs, uint16_t{0});
        }
        for (int64_t p = 0; p < panels; ++p) {
          const uint16_t* xpp = xp + (p * k_pairs + c0 / 2) * panel_rows * 2;
          float* ctile = ct + jt * m_pad + p * panel_rows;
          if (m - p * panel_rows > 16)
            gemm_tile_bf16<2>(xpp, wt, kc_pairs, ctile, m_pad, c0 > 0);
          else
            gemm_tile_bf16<1>(xpp, wt, kc_pairs, ctile, m_pad, c0 > 0);
        }
      }
    }
    store_transposed<Avx512>(ct, m_pad, m, nc, w.n, jc, bias, y);
  }
}

}  // namespace
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
      .pack_gemm_x_bf16 = avx512_pack_gemm_x_bf16,
      .gemm_cols_bf16 = avx512_gemm_cols_bf16,
  };
  return kernels;
}

}  // namespace hotswap::kernels::detail
