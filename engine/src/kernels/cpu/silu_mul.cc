// silu_mul(): silu(g) = g / (1 + exp(-g)) with a true division, so the result follows the
// reference's formula; exp is vec_math.h's (Cephes' polynomial, about 1 ulp on [-88.38, 88.38]).
// Dispatch on active_isa().
#include "kernels/silu_mul.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/isa.h"

HS_SILENCE_GCC12_AVX512_WARNINGS

namespace hotswap::kernels {
namespace {

constexpr int64_t kMinParallelElements = int64_t{1} << 16;
// Multiple of every vector width, so parallel chunks split on vector boundaries.
constexpr int64_t kChunk = 1024;
// exp(-g) with its argument clamped to ±88.38 (127.5 ln 2).
constexpr vec_math::ExpClamp kExpClamp = vec_math::ExpClamp::kExpf;

void silu_mul_scalar(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

HS_TARGET_AVX512 void silu_mul_avx512(const float* gate, const float* up, float* out, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 mask =
        static_cast<__mmask16>(n - i >= 16 ? 0xffff : (1u << static_cast<unsigned>(n - i)) - 1);
    const __m512 g = _mm512_maskz_loadu_ps(mask, gate + i), u = _mm512_maskz_loadu_ps(mask, up + i);
    const __m512 e = vec_math::exp_avx512<kExpClamp>(_mm512_sub_ps(_mm512_setzero_ps(), g));
    _mm512_mask_storeu_ps(out + i, mask, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), u));
  }
}

HS_TARGET_AVX2 void silu_mul_avx2(const float* gate, const float* up, float* out, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i), u = _mm256_loadu_ps(up + i);
    const __m256 e = vec_math::exp_avx2<kExpClamp>(_mm256_sub_ps(_mm256_setzero_ps(), g));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), u));
  }
  silu_mul_scalar(gate + i, up + i, out + i, n - i);
}

using SiluFn = void (*)(const float*, const float*, float*, int64_t);

SiluFn silu_fn(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return silu_mul_avx512;
    case Isa::kAvx2:
      return silu_mul_avx2;
    case Isa::kScalar:
      break;
  }
  return silu_mul_scalar;
}

}  // namespace

void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  if (n <= 0) return;
  const SiluFn fn = silu_fn(active_isa());
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  detail::for_each_index(chunks, n >= kMinParallelElements, [&](int64_t c) {
    const int64_t begin = c * kChunk;
    fn(gate + begin, up + begin, out + begin, std::min(kChunk, n - begin));
  });
}

}  // namespace hotswap::kernels
