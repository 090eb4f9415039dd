// Shared pieces of the element-wise kernels (rms_norm, silu_mul, add_inplace, embedding):
// per-function target attributes, so these compile for AVX2 / AVX-512 whatever the build's
// -march, and always-inline loads that widen F32/BF16/F16 to float32. Callers reach the
// AVX2/AVX-512 code only after active_isa() says the CPU has it. Internal to kernels/.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "core/dtype.h"

#define HS_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c,avx2")))
#define HS_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define HS_ALWAYS_INLINE inline __attribute__((always_inline))

// GCC 12's AVX-512 intrinsics self-initialise "undefined" operands, which -Wuninitialized
// reports at every inlined use; files with AVX-512 code open with this.
#define HS_SILENCE_GCC12_AVX512_WARNINGS                \
  _Pragma("GCC diagnostic ignored \"-Wuninitialized\"") \
      _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"")

namespace hotswap::kernels::detail {

// count (<= 16) elements of a D array at p, as float32; lanes >= count are zero and unread.
template <DType D>
HS_TARGET_AVX512 HS_ALWAYS_INLINE __m512 widen16_avx512(const void* p, int count) {
  const __mmask16 mask =
      count >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << count) - 1);
  if constexpr (D == DType::kF32) {
    return _mm512_maskz_loadu_ps(mask, p);
  } else if constexpr (D == DType::kF16) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, p));
  } else {
    const __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
  }
}

// 8 elements of a D array at p, as float32 (callers handle tails in scalar code).
template <DType D>
HS_TARGET_AVX2 HS_ALWAYS_INLINE __m256 widen8_avx2(const void* p) {
  if constexpr (D == DType::kF32) {
    return _mm256_loadu_ps(static_cast<const float*>(p));
  } else if constexpr (D == DType::kF16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(static_cast<const __m128i*>(p)));
  } else {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(static_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
  }
}

// Element i of a D array as float32; memcpy because the data may be only 2-byte aligned.
template <DType D>
HS_ALWAYS_INLINE float widen_scalar(const void* p, int64_t i) {
  if constexpr (D == DType::kF32) {
    float f;
    std::memcpy(&f, static_cast<const uint8_t*>(p) + i * 4, 4);
    return f;
  } else {
    uint16_t h;
    std::memcpy(&h, static_cast<const uint8_t*>(p) + i * 2, 2);
    return D == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
  }
}

constexpr int64_t elem_bytes(DType d) {
  return d == DType::kF32 ? 4 : 2;
}

}  // namespace hotswap::kernels::detail
