// AVX2 linear_q8 kernels (also AVX-512 CPUs without VNNI). A 16-row panel is two 8-row
// halves of 32 bytes per quad. vpmaddubsw multiplies unsigned by signed bytes but saturates
// its 16-bit pair sums, so the usual sign trick keeps both operands within ±127: |x| as the
// unsigned operand, w with x's sign as the signed one (w = stored byte ^ 0x80: offset binary
// back to two's complement); vpmaddwd with ones then sums each row's 4 products into an int32
// lane, giving the exact sum q_w·q_x that the VNNI and scalar forms compute. q4 needs no sign
// trick: its unpacked codes q + 8 <= 15 are the unsigned operand (pair sums <= 2·15·127), and
// 8·sum q_x is subtracted per block as in the VNNI form.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/q8_kernels.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

#define HS_INLINE inline __attribute__((always_inline))

namespace hotswap::kernels::detail {
namespace {

HS_INLINE __m256i mask8(int64_t count) {
  const int c = static_cast<int>(std::clamp<int64_t>(count, 0, 8));
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

HS_INLINE float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

HS_INLINE int32_t hsum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// quantize_row_q8 (kernels/q8.h), 8 lanes at a time; the same float operations, so the same q.
void avx2_quantize_x(const float* x, int64_t k, int64_t r0, int64_t r1, int8_t* q, float* d, int32_t* sum) {
  const int64_t blocks = q8_blocks(k);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);  // undoes the packs' lane interleave
  for (int64_t i = r0; i < r1; ++i) {
    const float* xr = x + i * k;
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t c0 = b * kQ8Block;
      __m256 v[4];
      __m256 amax8 = _mm256_setzero_ps();
      for (int t = 0; t < 4; ++t) {
        v[t] = _mm256_maskload_ps(xr + c0 + 8 * t, mask8(k - c0 - 8 * t));
        amax8 = _mm256_max_ps(amax8, _mm256_and_ps(v[t], abs_mask));
      }
      const float amax = hmax(amax8);
      const __m256 inv = _mm256_set1_ps(amax > 0 ? 127.0f / amax : 0.0f);
      __m256i qi[4];
      __m256i qsum = _mm256_setzero_si256();
      for (int t = 0; t < 4; ++t) {
        qi[t] = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(v[t], inv)), lo), hi);
        qsum = _mm256_add_epi32(qsum, qi[t]);
      }
      const __m256i q16a = _mm256_packs_epi32(qi[0], qi[1]), q16b = _mm256_packs_epi32(qi[2], qi[3]);
      const __m256i q8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(q16a, q16b), order);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + (i * blocks + b) * kQ8Block), q8);
      d[i * blocks + b] = amax / 127.0f;
      sum[i * blocks + b] = hsum(qsum);
    }
  }
}

// y rows [i0, i0 + kR) x W panels [p, p + kV) over blocks [b0, b1); 2·kV vectors per row.
template <QuantFormat F, int kR, int kV>
void tile(const Q8Activations& xa, int64_t i0, const Q8Matrix& w, int64_t p, int64_t b0, int64_t b1, bool first,
          const float* bias, float* y) {
  constexpr int kH = 2 * kV;  // 8-row halves
  constexpr int kLoads = F == QuantFormat::kQ4 ? 4 : 8, kQuadsPerLoad = 8 / kLoads;
  const int64_t blocks = xa.blocks;
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80)), nibble = _mm256_set1_epi8(0x0f);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[kR][kH];
  for (int r = 0; r < kR; ++r)
    for (int h = 0; h < kH; ++h) acc[r][h] = _mm256_setzero_ps();
  for (int64_t b = b0; b < b1; ++b) {
    __m256i s[kR][kH];
    for (int r = 0; r < kR; ++r)
      for (int h = 0; h < kH; ++h) s[r][h] = _mm256_setzero_si256();
    for (int load = 0; load < kLoads; ++load) {
      __m256i raw[kH];
      for (int h = 0; h < kH; ++h)
        raw[h] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(
            w.qs + ((p + h / 2) * blocks + b) * panel_block_bytes(F) + load * 64 + (h % 2) * 32));
      for (int half = 0; half < kQuadsPerLoad; ++half) {
        const int quad = load + 4 * half;  // q8: half is 0
        __m256i wv[kH];
        for (int h = 0; h < kH; ++h)
          wv[h] = F == QuantFormat::kQ8 ? _mm256_xor_si256(raw[h], flip)
                  : half == 0           ? _mm256_and_si256(raw[h], nibble)
                                        : _mm256_and_si256(_mm256_srli_epi16(raw[h], 4), nibble);
        for (int r = 0; r < kR; ++r) {
          int32_t x4;
          std::memcpy(&x4, xa.q + ((i0 + r) * blocks + b) * kQ8Block + quad * 4, sizeof x4);
          const __m256i xv = _mm256_set1_epi32(x4), ax = _mm256_abs_epi8(xv);
          for (int h = 0; h < kH; ++h) {
            const __m256i prod = F == QuantFormat::kQ8 ? _mm256_maddubs_epi16(ax, _mm256_sign_epi8(wv[h], xv))
                                                       : _mm256_maddubs_epi16(wv[h], xv);
            s[r][h] = _mm256_add_epi32(s[r][h], _mm256_madd_epi16(prod, ones));
          }
        }
      }
    }
    if constexpr (F == QuantFormat::kQ4) {
      for (int r = 0; r < kR; ++r) {
        const __m256i corr = _mm256_set1_epi32(code_offset(F) * xa.sum[(i0 + r) * blocks + b]);
        for (int h = 0; h < kH; ++h) s[r][h] = _mm256_sub_epi32(s[r][h], corr);
      }
    }
    __m256 dw[kH];
    for (int h = 0; h < kH; ++h)
      dw[h] = _mm256_cvtph_ps(_mm_loadu_si128(
          reinterpret_cast<const __m128i*>(w.scales + ((p + h / 2) * blocks + b) * kQ8PanelRows + (h % 2) * 8)));
    for (int r = 0; r < kR; ++r) {
      const __m256 dx = _mm256_set1_ps(xa.d[(i0 + r) * blocks + b]);
      for (int h = 0; h < kH; ++h)
        acc[r][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[r][h]), _mm256_mul_ps(dw[h], dx), acc[r][h]);
    }
  }
  for (int h = 0; h < kH; ++h) {
    const int64_t j = p * kQ8PanelRows + h * 8;
    const __m256i mask = mask8(w.n - j);
    const __m256 bv = bias ? _mm256_maskload_ps(bias + j, mask) : _mm256_setzero_ps();
    for (int r = 0; r < kR; ++r) {
      float* out = y + (i0 + r) * w.n + j;
      __m256 t = first ? acc[r][h] : _mm256_add_ps(_mm256_maskload_ps(out, mask), acc[r][h]);
      if (bias) t = _mm256_add_ps(t, bv);
      _mm256_maskstore_ps(out, mask, t);
    }
  }
}

#include "kernels/cpu/q8_tiling.inc"

void avx2_gemm(const Q8Activations& xa, int64_t m, const Q8Matrix& w, const float* bias, int64_t p0, int64_t p1,
               float* y) {
  // 16 registers: 1 row x 2 panels (4 sums, 4 accumulators) or 2 rows x 1 panel.
  if (w.format == QuantFormat::kQ4) {
    if (m == 1) return gemm_groups<QuantFormat::kQ4, 1, 2>(xa, m, w, bias, p0, p1, y);
    return gemm_groups<QuantFormat::kQ4, 2, 1>(xa, m, w, bias, p0, p1, y);
  }
  if (m == 1) return gemm_groups<QuantFormat::kQ8, 1, 2>(xa, m, w, bias, p0, p1, y);
  gemm_groups<QuantFormat::kQ8, 2, 1>(xa, m, w, bias, p0, p1, y);
}

}  // namespace
}  // namespace hotswap::kernels::detail

#pragma GCC pop_options

namespace hotswap::kernels::detail {

const Q8Kernels& avx2_q8_kernels() {
  static const Q8Kernels kernels = {.name = "avx2", .quantize_x = avx2_quantize_x, .gemm = avx2_gemm};
  return kernels;
}

}  // namespace hotswap::kernels::detail
