// add_inplace(): memory bound; the vector versions only make each pass one load pair and one
// store per vector. Dispatch on active_isa().
#include "kernels/add_inplace.h"

#include <algorithm>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/simd.h"
#include "kernels/isa.h"

HS_SILENCE_GCC12_AVX512_WARNINGS

namespace hotswap::kernels {
namespace {

constexpr int64_t kMinParallelElements = int64_t{1} << 17;
constexpr int64_t kChunk = 4096;  // per-thread unit; a multiple of every vector width

void add_scalar(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

HS_TARGET_AVX512 void add_avx512(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 mask =
        static_cast<__mmask16>(n - i >= 16 ? 0xffff : (1u << static_cast<unsigned>(n - i)) - 1);
    _mm512_mask_storeu_ps(
        y + i, mask, _mm512_add_ps(_mm512_maskz_loadu_ps(mask, y + i), _mm512_maskz_loadu_ps(mask, x + i)));
  }
}

HS_TARGET_AVX2 void add_avx2(float* y, const float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
  add_scalar(y + i, x + i, n - i);
}

}  // namespace

void add_inplace(float* y, const float* x, int64_t n) {
  if (n <= 0) return;
  const Isa isa = active_isa();
  auto* fn = isa == Isa::kAvx512 ? add_avx512 : isa == Isa::kAvx2 ? add_avx2 : add_scalar;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  detail::for_each_index(chunks, n >= kMinParallelElements, [&](int64_t c) {
    const int64_t begin = c * kChunk;
    fn(y + begin, x + begin, std::min(kChunk, n - begin));
  });
}

}  // namespace hotswap::kernels
