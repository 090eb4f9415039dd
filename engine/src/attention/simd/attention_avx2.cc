// AVX2 + FMA build of the CPU attention kernels (paged_attention_simd.inc and
// masked/sparse_attention_simd.inc over `struct Simd` below). The target pragma comes after
// every #include (see attention_avx512.cc).
#include <immintrin.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "attention/masked/sparse_attention_kernel.h"
#include "attention/paged_attention_kernel.h"
#include "core/touch_lines.h"
#include "core/dtype.h"
#include "kernels/cpu/vec_math.h"
#include "kv_cache/kv_q8.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma")

#define HS_INLINE inline __attribute__((always_inline))

namespace hotswap::attention_detail {
namespace {

struct Simd {
  static HS_INLINE float hsum(__m256 v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
  }
  static HS_INLINE float hmax(__m256 v) {
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    x = _mm_max_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
  }

  // exp(x) as in the AVX-512 build (vec_math.h's, clamped to [ln FLT_MIN, 88]).
  static HS_INLINE __m256 exp(__m256 x) {
    return kernels::vec_math::exp_avx2<kernels::vec_math::ExpClamp::kNormal>(x);
  }

  static HS_INLINE float dot(const float* a, const float* b, int d) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= d; i += 16) {
      acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
      acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    if (i + 8 <= d) {
      acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
      i += 8;
    }
    float s = hsum(_mm256_add_ps(acc0, acc1));
    for (; i < d; ++i) s += a[i] * b[i];
    return s;
  }

  // bf16 K/V rows: 8 elements widened to float32 in registers (bf16 is float32's upper half).
  static HS_INLINE __m256 load(const uint16_t* p) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }

  static HS_INLINE void widen(const uint16_t* src, float* dst, int d) {
    int i = 0;
    for (; i + 8 <= d; i += 8) _mm256_storeu_ps(dst + i, load(src + i));
    for (; i < d; ++i) dst[i] = bf16_to_f32(src[i]);
  }

  static HS_INLINE float dot(const float* a, const uint16_t* b, int d) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= d; i += 16) {
      acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), load(b + i), acc0);
      acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), load(b + i + 8), acc1);
    }
    if (i + 8 <= d) {
      acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), load(b + i), acc0);
      i += 8;
    }
    float s = hsum(_mm256_add_ps(acc0, acc1));
    for (; i < d; ++i) s += a[i] * bf16_to_f32(b[i]);
    return s;
  }

  static HS_INLINE void axpy(float s, const uint16_t* x, float* y, int d) {
    const __m256 vs = _mm256_set1_ps(s);
    int i = 0;
    for (; i + 8 <= d; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(vs, load(x + i), _mm256_loadu_ps(y + i)));
    for (; i < d; ++i) y[i] += s * bf16_to_f32(x[i]);
  }

  // q8 K/V rows (kv_q8.h, d % 32 == 0): 8 int8 values widened to float32 and multiplied by
  // their block's scale, exactly the dequantised float(q) * scale; then the float32 loop.
  static HS_INLINE __m256 deq(const int8_t* q, float scale) {
    const __m256i w = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q)));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(w), _mm256_set1_ps(scale));
  }
  static HS_INLINE void widen(const int8_t* row, float* dst, int d) {
    for (int i = 0; i < d; i += 8) _mm256_storeu_ps(dst + i, deq(row + i, kv_q8_scale(row, d, i / 32)));
  }
  static HS_INLINE float dot(const float* a, const int8_t* row, int d) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int i = 0; i < d; i += 16) {
      const float sc = kv_q8_scale(row, d, i / 32);
      acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), deq(row + i, sc), acc0);
      acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), deq(row + i + 8, sc), acc1);
    }
    return hsum(_mm256_add_ps(acc0, acc1));
  }
  static HS_INLINE void axpy(float s, const int8_t* row, float* y, int d) {
    const __m256 vs = _mm256_set1_ps(s);
    for (int i = 0; i < d; i += 8) {
      _mm256_storeu_ps(y + i, _mm256_fmadd_ps(vs, deq(row + i, kv_q8_scale(row, d, i / 32)), _mm256_loadu_ps(y + i)));
    }
  }

  static HS_INLINE void axpy(float s, const float* x, float* y, int d) {
    const __m256 vs = _mm256_set1_ps(s);
    int i = 0;
    for (; i + 8 <= d; i += 8) {
      _mm256_storeu_ps(y + i, _mm256_fmadd_ps(vs, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    }
    for (; i < d; ++i) y[i] += s * x[i];
  }

  // y += sum_r p[r] * rows[r] over n consecutive rows: n axpy calls in row order.
  template <class T>
  static HS_INLINE void axpy_rows(const float* p, const T* rows, int n, int d, float* y) {
    const size_t ru = kv_row_units(kv_dtype_of<T>(), d);
    for (int r = 0; r < n; ++r) axpy(p[r], rows + static_cast<size_t>(r) * ru, y, d);
  }
  static HS_INLINE void scale_add(float* acc, float c, const float* t, int d) {
    const __m256 vc = _mm256_set1_ps(c);
    int i = 0;
    for (; i + 8 <= d; i += 8) {
      _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(_mm256_loadu_ps(acc + i), vc, _mm256_loadu_ps(t + i)));
    }
    for (; i < d; ++i) acc[i] = acc[i] * c + t[i];
  }

  static HS_INLINE void zero(float* y, int d) {
    int i = 0;
    for (; i + 8 <= d; i += 8) _mm256_storeu_ps(y + i, _mm256_setzero_ps());
    for (; i < d; ++i) y[i] = 0.0f;
  }

  static HS_INLINE float max(const float* s, int n) {
    __m256 m = _mm256_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(s + i));
    float r = hmax(m);
    for (; i < n; ++i) r = s[i] > r ? s[i] : r;
    return r;
  }

  // p[j] = exp(s[j] - m), exactly 0 where s[j] = -inf (m is finite); returns the sum of p.
  static HS_INLINE float exp_shift_sum(const float* s, float m, float* p, int n) {
    const __m256 vm = _mm256_set1_ps(m);
    const __m256 minus_inf = _mm256_set1_ps(-INFINITY);
    __m256 sum = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
      const __m256 x = _mm256_loadu_ps(s + i);
      const __m256 e = _mm256_and_ps(exp(_mm256_sub_ps(x, vm)), _mm256_cmp_ps(x, minus_inf, _CMP_NEQ_OQ));
      _mm256_storeu_ps(p + i, e);
      sum = _mm256_add_ps(sum, e);
    }
    float total = hsum(sum);
    for (; i < n; ++i) total += (p[i] = __builtin_expf(s[i] - m));
    return total;
  }
};

HS_INLINE int tile_min(int a, int b) { return a < b ? a : b; }

#include "attention/online_softmax_simd.inc"
#include "attention/paged_attention_simd.inc"
#include "attention/paged_prefill_simd.inc"
#include "attention/masked/sparse_attention_simd.inc"

}  // namespace
}  // namespace hotswap::attention_detail

#pragma GCC pop_options

namespace hotswap::attention_detail {

ItemKernel avx2_item_kernel() { return &run_item; }
BlockKernel avx2_block_kernel() { return &run_block; }
SparseItemKernel sparse_avx2_item_kernel() { return &run_sparse_item; }

}  // namespace hotswap::attention_detail
