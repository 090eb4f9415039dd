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
  static constexpr int kDotRows = 4;
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
  };
  return kernels;
}

}  // namespace hotswap::kernels::detail
