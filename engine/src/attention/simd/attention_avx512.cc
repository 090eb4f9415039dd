// AVX-512 build of the CPU attention kernels: the paged kernel (paged_attention_simd.inc)
// and the sparse kernel of `masked` (masked/sparse_attention_simd.inc), both over the vector
// primitives of `struct Simd` below. The target pragma comes after every #include, so no
// inline function from a header is compiled for AVX-512 (kernels/cpu/vec_math.h's exp carries
// its own target attribute); this code runs only when kernels::active_isa() says the CPU has it.
#include <immintrin.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "attention/masked/sparse_attention_kernel.h"
#include "attention/paged_attention_kernel.h"
#include "core/touch_lines.h"
#include "kernels/cpu/vec_math.h"
#include "kv_cache/kv_q8.h"

#pragma GCC push_options
// GCC 12's AVX-512 intrinsics self-initialise their "undefined" operands, which
// -Wuninitialized reports at every inlined use.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx2")

#define HS_INLINE inline __attribute__((always_inline))

namespace hotswap::attention_detail {
namespace {

struct Simd {
  static HS_INLINE __mmask16 mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }

  // exp(x), vec_math.h's, clamped to [ln FLT_MIN, 88]: inputs below give ~1.2e-38 instead of
  // less, which is below every softmax weight that matters (exp_shift_sum maps -inf to 0 itself).
  static HS_INLINE __m512 exp(__m512 x) {
    return kernels::vec_math::exp_avx512<kernels::vec_math::ExpClamp::kNormal>(x);
  }

  // bf16 K/V rows: 16 elements widened to float32 in registers (bf16 is float32's upper half).
  static HS_INLINE __m512 widen(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
  static HS_INLINE __m512 load(const uint16_t* p) { return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static HS_INLINE __m512 maskz_load(__mmask16 m, const uint16_t* p) { return widen(_mm256_maskz_loadu_epi16(m, p)); }

  static HS_INLINE void widen(const uint16_t* src, float* dst, int d) {
    int i = 0;
    for (; i + 16 <= d; i += 16) _mm512_storeu_ps(dst + i, load(src + i));
    if (i < d) _mm512_mask_storeu_ps(dst + i, mask(d - i), maskz_load(mask(d - i), src + i));
  }

  static HS_INLINE void axpy(float s, const uint16_t* x, float* y, int d) {
    const __m512 vs = _mm512_set1_ps(s);
    int i = 0;
    for (; i + 16 <= d; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(vs, load(x + i), _mm512_loadu_ps(y + i)));
    if (i < d) {
      const __mmask16 m = mask(d - i);
      _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(vs, maskz_load(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
  }

  // q8 K/V rows (kv_q8.h, d % 32 == 0): 16 int8 values widened to float32 and multiplied by
  // their block's scale, exactly the dequantised float(q) * scale; then the float32 loop.
  static HS_INLINE __m512 deq(const int8_t* q, float scale) {
    const __m512i w = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(w), _mm512_set1_ps(scale));
  }
  static HS_INLINE void widen(const int8_t* row, float* dst, int d) {
    for (int i = 0; i < d; i += 32) {
      const float sc = kv_q8_scale(row, d, i / 32);
      _mm512_storeu_ps(dst + i, deq(row + i, sc));
      _mm512_storeu_ps(dst + i + 16, deq(row + i + 16, sc));
    }
  }
  static HS_INLINE void axpy(float s, const int8_t* row, float* y, int d) {
    const __m512 vs = _mm512_set1_ps(s);
    for (int i = 0; i < d; i += 16) {
      _mm512_storeu_ps(y + i, _mm512_fmadd_ps(vs, deq(row + i, kv_q8_scale(row, d, i / 32)), _mm512_loadu_ps(y + i)));
    }
  }

  static HS_INLINE void axpy(float s, const float* x, float* y, int d) {
    const __m512 vs = _mm512_set1_ps(s);
    int i = 0;
    for (; i + 16 <= d; i += 16) {
      _mm512_storeu_ps(y + i, _mm512_fmadd_ps(vs, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    }
    if (i < d) {
      const __mmask16 m = mask(d - i);
      _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(vs, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
  }

  // y += sum_r p[r] * rows[r] over n consecutive rows of d elements (float, bf16 or q8), each
  // element's products added in row order as n axpy calls would: the same FMAs, but y stays in
  // registers across the rows instead of a load and store per row. ld: 16 elements at i.
  static HS_INLINE __m512 ld(const float* row, int i, int) { return _mm512_loadu_ps(row + i); }
  static HS_INLINE __m512 ld(const uint16_t* row, int i, int) { return load(row + i); }
  static HS_INLINE __m512 ld(const int8_t* row, int i, int d) { return deq(row + i, kv_q8_scale(row, d, i / 32)); }
  static HS_INLINE __m512 maskz_ld(__mmask16 m, const float* row, int i) { return _mm512_maskz_loadu_ps(m, row + i); }
  static HS_INLINE __m512 maskz_ld(__mmask16 m, const uint16_t* row, int i) { return maskz_load(m, row + i); }

  // The dot product of a float32 q row and a K row (float, bf16 or q8 widened in registers):
  // elements [32c, 32c + 16) summed in order into acc0 and [32c + 16, 32c + 32) into acc1
  // (the first product of each a plain multiply), a tail of 16 into acc0 and a shorter one
  // into acc1; dot_lanes returns acc0 + acc1 and dot() its _mm512_reduce_add_ps. score_tile
  // reproduces these bits 16 keys at a time.
  template <class T>
  static HS_INLINE __m512 dot_lanes(const float* a, const T* b, int d) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int i = 0;
    if (d >= 32) {
      acc0 = _mm512_mul_ps(_mm512_loadu_ps(a), ld(b, 0, d));
      acc1 = _mm512_mul_ps(_mm512_loadu_ps(a + 16), ld(b, 16, d));
      i = 32;
    }
    for (; i + 32 <= d; i += 32) {
      acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), ld(b, i, d), acc0);
      acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), ld(b, i + 16, d), acc1);
    }
    if (i + 16 <= d) {
      acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), ld(b, i, d), acc0);
      i += 16;
    }
    if constexpr (!std::is_same_v<T, int8_t>) {  // q8 rows have d % 32 == 0
      if (i < d) {
        const __mmask16 m = mask(d - i);
        acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), maskz_ld(m, b, i), acc1);
      }
    }
    return _mm512_add_ps(acc0, acc1);
  }
  template <class T>
  static HS_INLINE float dot(const float* a, const T* b, int d) {
    return _mm512_reduce_add_ps(dot_lanes(a, b, d));
  }

  // scores[i * ld + j] = dot(q[i], k + j * d, d) * scale, i < m, j < n (n % 16 == 0), bit
  // for bit. _mm512_reduce_add_ps's tree pairs lanes (i, i+8), then (i, i+4), (i, i+2),
  // (0, 1). Sixteen keys' dot_lanes go down that tree together: each step adds a blend of
  // two vectors to a two-source permute of them, so one add serves two keys and a score
  // costs ~3 instructions of reduction instead of ~8. The steps leave the keys in lanes
  // kScoreLane, which one permute puts back in order.
  template <int D>
  static HS_INLINE void score_tile_d(const float* const* q, int m, const float* k, int n, float scale,
                                     float* scores, int ld) {
    static_assert(D % 32 == 0);
    const __m512i pair8 = _mm512_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23);
    const __m512i pair4 = _mm512_setr_epi32(4, 5, 6, 7, 16, 17, 18, 19, 12, 13, 14, 15, 24, 25, 26, 27);
    const __m512i pair2 = _mm512_setr_epi32(2, 3, 16, 17, 6, 7, 20, 21, 10, 11, 24, 25, 14, 15, 28, 29);
    const __m512i pair1 = _mm512_setr_epi32(1, 16, 3, 18, 5, 20, 7, 22, 9, 24, 11, 26, 13, 28, 15, 30);
    const __m512i key_order = _mm512_setr_epi32(0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15);
    // Lanes [0, 16) of a and b added to the lanes `idx` pairs them with; `keep` says which
    // lanes come from b.
    auto step = [](__m512 a, __m512 b, __mmask16 keep, __m512i idx) {
      return _mm512_add_ps(_mm512_mask_blend_ps(keep, a, b), _mm512_permutex2var_ps(a, idx, b));
    };
    const __m512 vscale = _mm512_set1_ps(scale);
    for (int j0 = 0; j0 < n; j0 += 16) {
      const float* kb = k + static_cast<size_t>(j0) * D;
      for (int i = 0; i < m; ++i) {
        __m512 w[8];  // keys 2p | 2p+1 in lanes 0-7 | 8-15
        for (int p = 0; p < 8; ++p) {
          w[p] = step(dot_lanes(q[i], kb + static_cast<size_t>(2 * p) * D, D),
                      dot_lanes(q[i], kb + static_cast<size_t>(2 * p + 1) * D, D), 0xFF00, pair8);
        }
        __m512 x[4];  // keys 4r, 4r+2, 4r+1, 4r+3, one per 128-bit lane
        for (int r = 0; r < 4; ++r) x[r] = step(w[2 * r], w[2 * r + 1], 0xF0F0, pair4);
        const __m512 y0 = step(x[0], x[1], 0xCCCC, pair2);
        const __m512 y1 = step(x[2], x[3], 0xCCCC, pair2);
        const __m512 z = step(y0, y1, 0xAAAA, pair1);
        _mm512_storeu_ps(scores + static_cast<size_t>(i) * ld + j0,
                         _mm512_mul_ps(_mm512_permutexvar_ps(key_order, z), vscale));
      }
    }
  }
  // Head dims without a tiled form take dot() per pair.
  static HS_INLINE void score_tile(const float* const* q, int m, const float* k, int n, int d, float scale,
                                   float* scores, int ld) {
    if (d == 64) return score_tile_d<64>(q, m, k, n, scale, scores, ld);
    if (d == 128) return score_tile_d<128>(q, m, k, n, scale, scores, ld);
    for (int i = 0; i < m; ++i) {
      for (int j = 0; j < n; ++j) scores[static_cast<size_t>(i) * ld + j] = dot(q[i], k + static_cast<size_t>(j) * d, d) * scale;
    }
  }

  template <int N, class T>
  static HS_INLINE void axpy_rows_n(const float* p, const T* rows, int n, int d, float* y) {
    const size_t ru = kv_row_units(kv_dtype_of<T>(), d);
    __m512 acc[N];
    for (int k = 0; k < N; ++k) acc[k] = _mm512_loadu_ps(y + 16 * k);
    for (int r = 0; r < n; ++r, rows += ru) {
      const __m512 vs = _mm512_set1_ps(p[r]);
      for (int k = 0; k < N; ++k) acc[k] = _mm512_fmadd_ps(vs, ld(rows, 16 * k, d), acc[k]);
    }
    for (int k = 0; k < N; ++k) _mm512_storeu_ps(y + 16 * k, acc[k]);
  }
  // axpy_rows for `states` probability rows p[s] over the same n float32 rows, each y[s] summed
  // exactly as axpy_rows sums it: one state's 4 accumulators wait on the FMA latency every
  // row, four states' 16 keep both FMA ports busy, and each row is loaded once for all.
  template <int N, int S>
  static HS_INLINE void axpy_rows_states_n(const float* const* p, const float* rows, int n, float* const* y) {
    __m512 acc[S][N];
    for (int s = 0; s < S; ++s) {
      for (int k = 0; k < N; ++k) acc[s][k] = _mm512_loadu_ps(y[s] + 16 * k);
    }
    for (int r = 0; r < n; ++r, rows += 16 * N) {
      for (int k = 0; k < N; ++k) {
        const __m512 v = _mm512_loadu_ps(rows + 16 * k);
        for (int s = 0; s < S; ++s) acc[s][k] = _mm512_fmadd_ps(_mm512_set1_ps(p[s][r]), v, acc[s][k]);
      }
    }
    for (int s = 0; s < S; ++s) {
      for (int k = 0; k < N; ++k) _mm512_storeu_ps(y[s] + 16 * k, acc[s][k]);
    }
  }
  static HS_INLINE void axpy_rows_states(const float* const* p, int states, const float* rows, int n, int d,
                                         float* const* y) {
    if (d == 64 && states == 4) return axpy_rows_states_n<4, 4>(p, rows, n, y);
    if (d == 64 && states == 2) return axpy_rows_states_n<4, 2>(p, rows, n, y);
    if (d == 128 && states == 2) return axpy_rows_states_n<8, 2>(p, rows, n, y);
    for (int s = 0; s < states; ++s) axpy_rows(p[s], rows, n, d, y[s]);
  }

  template <class T>
  static HS_INLINE void axpy_rows(const float* p, const T* rows, int n, int d, float* y) {
    if (d == 64) return axpy_rows_n<4>(p, rows, n, d, y);
    if (d == 128) return axpy_rows_n<8>(p, rows, n, d, y);
    const size_t ru = kv_row_units(kv_dtype_of<T>(), d);
    for (int r = 0; r < n; ++r) axpy(p[r], rows + static_cast<size_t>(r) * ru, y, d);
  }

  // compact_attended_portable (sparse_attention_kernel.h), 8 keys at a time: the attended
  // keys' row pointers and biases compressed in registers and stored whole (the outputs have
  // slack for the unused lanes).
  template <class T>
  static HS_INLINE int compact_attended(const float* bias, int n, const T* const* k_rows, const T* const* v_rows,
                                        const T** k_out, const T** v_out, float* bias_out) {
    const __m256 minus_inf = _mm256_set1_ps(-INFINITY);
    int c = 0;
    for (int j = 0; j < n; j += 8) {
      const __mmask8 in = static_cast<__mmask8>(n - j >= 8 ? 0xff : (1u << (n - j)) - 1u);
      const __m256 b = _mm256_maskz_loadu_ps(in, bias + j);
      const __mmask8 m = _mm256_mask_cmp_ps_mask(in, b, minus_inf, _CMP_NEQ_OQ);
      const __m512i kp = _mm512_maskz_loadu_epi64(in, k_rows + j);
      const __m512i vp = _mm512_maskz_loadu_epi64(in, v_rows + j);
      _mm512_storeu_si512(k_out + c, _mm512_maskz_compress_epi64(m, kp));
      _mm512_storeu_si512(v_out + c, _mm512_maskz_compress_epi64(m, vp));
      _mm256_storeu_ps(bias_out + c, _mm256_maskz_compress_ps(m, b));
      c += __builtin_popcount(m);
    }
    return c;
  }

  // y += sum_r p[r] * rows[r][:] over n rows found through pointers, in row order, y in
  // registers across the rows (the sparse kernel's value sums over a head's gathered keys).
  template <int N, class T>
  static HS_INLINE void axpy_rows_at_n(const float* p, const T* const* rows, int n, int d, float* y) {
    __m512 acc[N];
    for (int k = 0; k < N; ++k) acc[k] = _mm512_loadu_ps(y + 16 * k);
    for (int r = 0; r < n; ++r) {
      const __m512 vs = _mm512_set1_ps(p[r]);
      for (int k = 0; k < N; ++k) acc[k] = _mm512_fmadd_ps(vs, ld(rows[r], 16 * k, d), acc[k]);
    }
    for (int k = 0; k < N; ++k) _mm512_storeu_ps(y + 16 * k, acc[k]);
  }
  template <class T>
  static HS_INLINE void axpy_rows_at(const float* p, const T* const* rows, int n, int d, float* y) {
    if (d == 64) return axpy_rows_at_n<4>(p, rows, n, d, y);
    if (d == 128) return axpy_rows_at_n<8>(p, rows, n, d, y);
    for (int r = 0; r < n; ++r) axpy(p[r], rows[r], y, d);
  }

  // acc = acc * c + t
  static HS_INLINE void scale_add(float* acc, float c, const float* t, int d) {
    const __m512 vc = _mm512_set1_ps(c);
    int i = 0;
    for (; i + 16 <= d; i += 16) {
      _mm512_storeu_ps(acc + i, _mm512_fmadd_ps(_mm512_loadu_ps(acc + i), vc, _mm512_loadu_ps(t + i)));
    }
    if (i < d) {
      const __mmask16 m = mask(d - i);
      _mm512_mask_storeu_ps(acc + i, m,
                            _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, acc + i), vc, _mm512_maskz_loadu_ps(m, t + i)));
    }
  }

  static HS_INLINE void zero(float* y, int d) {
    int i = 0;
    for (; i + 16 <= d; i += 16) _mm512_storeu_ps(y + i, _mm512_setzero_ps());
    if (i < d) _mm512_mask_storeu_ps(y + i, mask(d - i), _mm512_setzero_ps());
  }

  static HS_INLINE float max(const float* s, int n) {
    const __m512 lowest = _mm512_set1_ps(-INFINITY);
    __m512 m = lowest;
    int i = 0;
    for (; i + 16 <= n; i += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(s + i));
    if (i < n) m = _mm512_max_ps(m, _mm512_mask_loadu_ps(lowest, mask(n - i), s + i));
    return _mm512_reduce_max_ps(m);
  }

  // p[j] = exp(s[j] - m), exactly 0 where s[j] = -inf (m is finite); returns the sum of p.
  static HS_INLINE float exp_shift_sum(const float* s, float m, float* p, int n) {
    const __m512 vm = _mm512_set1_ps(m);
    const __m512 minus_inf = _mm512_set1_ps(-INFINITY);
    __m512 sum = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
      const __m512 x = _mm512_loadu_ps(s + i);
      const __mmask16 live = _mm512_cmp_ps_mask(x, minus_inf, _CMP_NEQ_OQ);
      const __m512 e = _mm512_maskz_mov_ps(live, exp(_mm512_sub_ps(x, vm)));
      _mm512_storeu_ps(p + i, e);
      sum = _mm512_add_ps(sum, e);
    }
    if (i < n) {
      const __mmask16 k = mask(n - i);
      const __m512 x = _mm512_mask_loadu_ps(minus_inf, k, s + i);
      const __mmask16 live = _mm512_cmp_ps_mask(x, minus_inf, _CMP_NEQ_OQ);
      const __m512 e = _mm512_maskz_mov_ps(live, exp(_mm512_sub_ps(x, vm)));
      _mm512_mask_storeu_ps(p + i, k, e);
      sum = _mm512_add_ps(sum, e);
    }
    return _mm512_reduce_add_ps(sum);
  }
};

HS_INLINE int tile_min(int a, int b) { return a < b ? a : b; }

#include "attention/online_softmax_simd.inc"
#include "attention/paged_attention_simd.inc"
#include "attention/paged_prefill_simd.inc"
#include "attention/masked/sparse_attention_simd.inc"

}  // namespace
}  // namespace hotswap::attention_detail

#pragma GCC diagnostic pop
#pragma GCC pop_options

namespace hotswap::attention_detail {

ItemKernel avx512_item_kernel() { return &run_item; }
BlockKernel avx512_block_kernel() { return &run_block; }
SparseItemKernel sparse_avx512_item_kernel() { return &run_sparse_item; }

}  // namespace hotswap::attention_detail
