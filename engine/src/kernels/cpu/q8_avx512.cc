// AVX-512 VNNI linear_q8 kernels. One vpdpbusd multiplies a 64-byte quad of a W panel (16 rows
// x 4 columns, unsigned: q + 128) by 4 activations broadcast to every lane (signed) and adds
// each row's 4 products into its int32 lane; after a block's 8 quads the lane holds
// sum (q_w + 128)·q_x, and subtracting 128·sum q_x (precomputed per activation block) leaves
// the exact sum q_w·q_x. The lanes are W rows, so y needs no horizontal sums or transposes.
// q4: one 64-byte load holds quads t and t+4 as nibbles; a mask and a shift make them the
// unsigned bytes q + 8 of the same vpdpbusd, and the correction is 8·sum q_x.
// The target pragma comes after every #include (see linear_avx512.cc).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/q8_kernels.h"

#pragma GCC push_options
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c,avx2")

#define HS_INLINE inline __attribute__((always_inline))

namespace hotswap::kernels::detail {
namespace {

HS_INLINE __mmask16 mask16(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xffff) : n <= 0 ? 0 : static_cast<__mmask16>((1u << n) - 1);
}

// quantize_row_q8 (kernels/q8.h), 32 lanes at a time; the same float operations, so the same q.
void avx512_quantize_x(const float* x, int64_t k, int64_t r0, int64_t r1, int8_t* q, float* d, int32_t* sum) {
  const int64_t blocks = q8_blocks(k);
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
  for (int64_t i = r0; i < r1; ++i) {
    const float* xr = x + i * k;
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t c0 = b * kQ8Block;
      const __m512 v0 = _mm512_maskz_loadu_ps(mask16(k - c0), xr + c0);
      const __m512 v1 = _mm512_maskz_loadu_ps(mask16(k - c0 - 16), xr + c0 + 16);
      const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_and_ps(v0, abs_mask), _mm512_and_ps(v1, abs_mask)));
      const __m512 inv = _mm512_set1_ps(amax > 0 ? 127.0f / amax : 0.0f);
      // cvtps rounds to nearest even (the default MXCSR mode); NaN becomes INT_MIN -> -127.
      const __m512i q0 = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v0, inv)), lo), hi);
      const __m512i q1 = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v1, inv)), lo), hi);
      int8_t* qb = q + (i * blocks + b) * kQ8Block;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(qb), _mm512_cvtepi32_epi8(q0));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(qb + 16), _mm512_cvtepi32_epi8(q1));
      d[i * blocks + b] = amax / 127.0f;
      sum[i * blocks + b] = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    }
  }
}

// y rows [i0, i0 + kR) x W panels [p, p + kV) over blocks [b0, b1): kR·kV int32 block sums and
// as many float32 accumulators (<= 2·16 + kV + kV registers for kR·kV <= 8).
template <QuantFormat F, int kR, int kV>
void tile(const Q8Activations& xa, int64_t i0, const Q8Matrix& w, int64_t p, int64_t b0, int64_t b1, bool first,
          const float* bias, float* y) {
  constexpr int64_t kBlockBytes = panel_block_bytes(F);
  constexpr int kLoads = F == QuantFormat::kQ4 ? 4 : 8, kQuadsPerLoad = 8 / kLoads;
  const __m512i nibble = _mm512_set1_epi8(0x0f);
  const int64_t blocks = xa.blocks;
  __m512 acc[kR][kV];
#pragma GCC unroll 8
  for (int r = 0; r < kR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < kV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t b = b0; b < b1; ++b) {
    const uint8_t* wb[kV];
#pragma GCC unroll 8
    for (int v = 0; v < kV; ++v) {
      wb[v] = w.qs + ((p + v) * blocks + b) * kBlockBytes;
      // The same block two chunks on: ahead of the hardware prefetcher, which each new panel
      // restarts (a prefetch past the end is harmless).
      _mm_prefetch(reinterpret_cast<const char*>(wb[v] + 2 * kQ8ChunkBlocks * kBlockBytes), _MM_HINT_T0);
    }
    __m512i s[kR][kV];
#pragma GCC unroll 8
    for (int r = 0; r < kR; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < kV; ++v) s[r][v] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int load = 0; load < kLoads; ++load) {
      __m512i raw[kV];
#pragma GCC unroll 8
      for (int v = 0; v < kV; ++v) raw[v] = _mm512_loadu_si512(wb[v] + load * 64);
#pragma GCC unroll 2
      for (int half = 0; half < kQuadsPerLoad; ++half) {
        const int quad = load + 4 * half;  // q8: half is 0
        __m512i wv[kV];
#pragma GCC unroll 8
        for (int v = 0; v < kV; ++v)
          wv[v] = F == QuantFormat::kQ8 ? raw[v]
                  : half == 0           ? _mm512_and_si512(raw[v], nibble)
                                        : _mm512_and_si512(_mm512_srli_epi16(raw[v], 4), nibble);
#pragma GCC unroll 8
        for (int r = 0; r < kR; ++r) {
          int32_t x4;
          std::memcpy(&x4, xa.q + ((i0 + r) * blocks + b) * kQ8Block + quad * 4, sizeof x4);
          const __m512i xv = _mm512_set1_epi32(x4);
#pragma GCC unroll 8
          for (int v = 0; v < kV; ++v) s[r][v] = _mm512_dpbusd_epi32(s[r][v], wv[v], xv);
        }
      }
    }
    __m512 dw[kV];
#pragma GCC unroll 8
    for (int v = 0; v < kV; ++v)
      dw[v] = _mm512_cvtph_ps(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.scales + ((p + v) * blocks + b) * kQ8PanelRows)));
#pragma GCC unroll 8
    for (int r = 0; r < kR; ++r) {
      const __m512 dx = _mm512_set1_ps(xa.d[(i0 + r) * blocks + b]);
      const __m512i corr = _mm512_set1_epi32(code_offset(F) * xa.sum[(i0 + r) * blocks + b]);
#pragma GCC unroll 8
      for (int v = 0; v < kV; ++v)
        acc[r][v] =
            _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(s[r][v], corr)), _mm512_mul_ps(dw[v], dx), acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int v = 0; v < kV; ++v) {
    const int64_t j = (p + v) * kQ8PanelRows;
    const __mmask16 mask = mask16(w.n - j);
    const __m512 bv = bias ? _mm512_maskz_loadu_ps(mask, bias + j) : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int r = 0; r < kR; ++r) {
      float* out = y + (i0 + r) * w.n + j;
      __m512 t = first ? acc[r][v] : _mm512_add_ps(_mm512_maskz_loadu_ps(mask, out), acc[r][v]);
      if (bias) t = _mm512_add_ps(t, bv);
      _mm512_mask_storeu_ps(out, mask, t);
    }
  }
}

#include "kernels/cpu/q8_tiling.inc"

void avx512_gemm(const Q8Activations& xa, int64_t m, const Q8Matrix& w, const float* bias, int64_t p0, int64_t p1,
                 float* y) {
  // Decode streams W from memory: four panels in flight. Batched: 4 rows x 2 panels (8 int32
  // chains cover vpdpbusd's latency; 2 W loads and 4 broadcasts per 8 vpdpbusd).
  if (w.format == QuantFormat::kQ4) {
    if (m == 1) return gemm_groups<QuantFormat::kQ4, 1, 4>(xa, m, w, bias, p0, p1, y);
    return gemm_groups<QuantFormat::kQ4, 4, 2>(xa, m, w, bias, p0, p1, y);
  }
  if (m == 1) return gemm_groups<QuantFormat::kQ8, 1, 4>(xa, m, w, bias, p0, p1, y);
  gemm_groups<QuantFormat::kQ8, 4, 2>(xa, m, w, bias, p0, p1, y);
}

}  // namespace
}  // namespace hotswap::kernels::detail

#pragma GCC diagnostic pop
#pragma GCC pop_options

namespace hotswap::kernels::detail {

const Q8Kernels& avx512_q8_kernels() {
  static const Q8Kernels kernels = {.name = "avx512_vnni", .quantize_x = avx512_quantize_x, .gemm = avx512_gemm};
  return kernels;
}

}  // namespace hotswap::kernels::detail
