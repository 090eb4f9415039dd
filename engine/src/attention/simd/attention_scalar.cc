// Portable build of the CPU attention kernels (paged_attention_simd.inc and
// masked/sparse_attention_simd.inc over `struct Simd` below): plain loops the compiler may
// vectorise for the baseline target; libm's expf (exp(-inf) = 0 exactly).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "attention/masked/sparse_attention_kernel.h"
#include "attention/paged_attention_kernel.h"
#include "core/touch_lines.h"
#include "core/dtype.h"
#include "kv_cache/kv_q8.h"

#define HS_INLINE inline __attribute__((always_inline))

namespace hotswap::attention_detail {
namespace {

struct Simd {
  // The paged kernel widens a bf16/q8 row serving several heads once (paged_attention_simd.inc).
  static constexpr bool kWidenSharedRows = true;

  static HS_INLINE float dot(const float* a, const float* b, int d) {
    float s = 0.0f;
    for (int i = 0; i < d; ++i) s += a[i] * b[i];
    return s;
  }
  static HS_INLINE void axpy(float s, const float* x, float* y, int d) {
    for (int i = 0; i < d; ++i) y[i] += s * x[i];
  }
  // bf16 K/V rows, widened element by element.
  static HS_INLINE void widen(const uint16_t* src, float* dst, int d) {
    for (int i = 0; i < d; ++i) dst[i] = bf16_to_f32(src[i]);
  }
  static HS_INLINE float dot(const float* a, const uint16_t* b, int d) {
    float s = 0.0f;
    for (int i = 0; i < d; ++i) s += a[i] * bf16_to_f32(b[i]);
    return s;
  }
  static HS_INLINE void axpy(float s, const uint16_t* x, float* y, int d) {
    for (int i = 0; i < d; ++i) y[i] += s * bf16_to_f32(x[i]);
  }
  // q8 K/V rows (kv_q8.h): each value dequantised, float(q) * its block's scale.
  static HS_INLINE void widen(const int8_t* row, float* dst, int d) { dequantize_kv_row_q8(row, d, dst); }
  static HS_INLINE float dot(const float* a, const int8_t* row, int d) {
    float s = 0.0f;
    for (int i = 0; i < d; ++i) s += a[i] * (static_cast<float>(row[i]) * kv_q8_scale(row, d, i / 32));
    return s;
  }
  static HS_INLINE void axpy(float s, const int8_t* row, float* y, int d) {
    for (int i = 0; i < d; ++i) y[i] += s * (static_cast<float>(row[i]) * kv_q8_scale(row, d, i / 32));
  }
  // y += sum_r p[r] * rows[r] over n consecutive rows: n axpy calls in row order.
  template <class T>
  static HS_INLINE void axpy_rows(const float* p, const T* rows, int n, int d, float* y) {
    const size_t ru = kv_row_units(kv_dtype_of<T>(), d);
    for (int r = 0; r < n; ++r) axpy(p[r], rows + static_cast<size_t>(r) * ru, y, d);
  }
  static HS_INLINE void scale_add(float* acc, float c, const float* t, int d) {
    for (int i = 0; i < d; ++i) acc[i] = acc[i] * c + t[i];
  }
  static HS_INLINE void zero(float* y, int d) {
    for (int i = 0; i < d; ++i) y[i] = 0.0f;
  }
  static HS_INLINE float max(const float* s, int n) {
    float m = -INFINITY;
    for (int i = 0; i < n; ++i) m = s[i] > m ? s[i] : m;
    return m;
  }
  static HS_INLINE float exp_shift_sum(const float* s, float m, float* p, int n) {
    float total = 0.0f;
    for (int i = 0; i < n; ++i) total += (p[i] = std::exp(s[i] - m));
    return total;
  }
};

HS_INLINE int tile_min(int a, int b) { return a < b ? a : b; }

#include "attention/online_softmax_simd.inc"
#include "attention/paged_attention_simd.inc"
#include "attention/masked/sparse_attention_simd.inc"

}  // namespace

ItemKernel scalar_item_kernel() { return &run_item; }
SparseItemKernel sparse_scalar_item_kernel() { return &run_sparse_item; }

}  // namespace hotswap::attention_detail
