// AVX2 + FMA + F16C linear() kernels, for CPUs without AVX-512 (and HOTSWAP_ISA=avx2).
// Same structure as linear_avx512.cc with 8-lane vectors and 16 registers; there are no
// 16-bit masked loads, so partial steps go through a zero-padded stack copy.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/linear_kernels.h"
#include "kernels/cpu/scratch.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,bmi,bmi2")

#define HS_INLINE inline __attribute__((always_inline))

namespace hotswap::kernels::detail {
namespace {

struct Avx2 {
  using V = __m256;
  static constexpr int kLanes = 8;
  static constexpr int kGemvRows = 8;
  static constexpr int kDotRows = 4;
  static constexpr int kDotMaxXRows = 2;
  static constexpr int kPanelVecs = 2;
  static constexpr int kTileCols = 6;

  static HS_INLINE V zero() { return _mm256_setzero_ps(); }
  static HS_INLINE V load(const float* p) { return _mm256_load_ps(p); }
  static HS_INLINE V loadu(const float* p) { return _mm256_loadu_ps(p); }
  static HS_INLINE void store(float* p, V v) { _mm256_store_ps(p, v); }
  static HS_INLINE void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
  static HS_INLINE V set1(float f) { return _mm256_set1_ps(f); }
  static HS_INLINE V add(V a, V b) { return _mm256_add_ps(a, b); }
  static HS_INLINE V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static HS_INLINE float reduce_add(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }

  static HS_INLINE __m256i mask8(int count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static HS_INLINE V load_partial(const float* p, int count) { return _mm256_maskload_ps(p, mask8(count)); }
  static HS_INLINE void store_partial(float* p, V v, int count) { _mm256_maskstore_ps(p, mask8(count), v); }

  // In place: r[c][t] becomes r[t][c].
  static HS_INLINE void transpose(V r[8]) {
    V t[8], u[8];
    for (int a = 0; a < 4; ++a) {
      t[2 * a] = _mm256_unpacklo_ps(r[2 * a], r[2 * a + 1]);
      t[2 * a + 1] = _mm256_unpackhi_ps(r[2 * a], r[2 * a + 1]);
    }
    // u[4b + c], 128-bit lane l: rows 4b..4b+3 of column 4l + c.
    for (int b = 0; b < 2; ++b) {
      u[4 * b + 0] = _mm256_shuffle_ps(t[4 * b], t[4 * b + 2], 0x44);
      u[4 * b + 1] = _mm256_shuffle_ps(t[4 * b], t[4 * b + 2], 0xee);
      u[4 * b + 2] = _mm256_shuffle_ps(t[4 * b + 1], t[4 * b + 3], 0x44);
      u[4 * b + 3] = _mm256_shuffle_ps(t[4 * b + 1], t[4 * b + 3], 0xee);
    }
    for (int c = 0; c < 4; ++c) {
      r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
      r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
    }
  }

  template <DType D>
  static HS_INLINE void load_step(const uint8_t* p, V& lo, V& hi) {
    if constexpr (D == DType::kF32) {
      lo = _mm256_loadu_ps(reinterpret_cast<const float*>(p));
      hi = _mm256_loadu_ps(reinterpret_cast<const float*>(p + 32));
    } else if constexpr (D == DType::kF16) {
      lo = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
      hi = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16)));
    } else {
      // BF16 pairs in 32-bit lanes: low halves are the even elements, high halves the odd.
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
      lo = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
      hi = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(static_cast<int>(0xffff0000u))));
    }
  }
  template <DType D>
  static HS_INLINE void load_step_partial(const uint8_t* p, int rem, V& lo, V& hi) {
    alignas(32) uint8_t buf[2 * kLanes * 4] = {};
    std::memcpy(buf, p, static_cast<size_t>(rem) * (D == DType::kF32 ? 4 : 2));
    load_step<D>(buf, lo, hi);
  }
  template <DType D>
  static HS_INLINE V widen(const uint8_t* p) {
    if constexpr (D == DType::kF32) {
      return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
    } else if constexpr (D == DType::kF16) {
      return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    } else {
      const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
      return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    }
  }
  template <DType D>
  static HS_INLINE V widen_partial(const uint8_t* p, int rem) {
    alignas(32) uint8_t buf[kLanes * 4] = {};
    std::memcpy(buf, p, static_cast<size_t>(rem) * (D == DType::kF32 ? 4 : 2));
    return widen<D>(buf);
  }
};

#include "kernels/cpu/linear_simd.inc"

}  // namespace
}  // namespace hotswap::kernels::detail

#pragma GCC pop_options

namespace hotswap::kernels::detail {

const LinearKernels& avx2_linear_kernels() {
  static const LinearKernels kernels = {
      .name = "avx2",
      .dot_x_stride = simd_dot_x_stride<Avx2>,
      .prepare_dot_x = simd_prepare_dot_x<Avx2>,
      .dot_rows = simd_dot_rows<Avx2>,
      .gemm_panel_rows = kPanelRows<Avx2>,
      .gemm_tile_cols = Avx2::kTileCols,
      .pack_gemm_x = simd_pack_gemm_x<Avx2>,
      .gemm_cols = simd_gemm_cols<Avx2>,
  };
  return kernels;
}

}  // namespace hotswap::kernels::detail
