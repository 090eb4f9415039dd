// rms_norm(): one pass for the sum of squares (float32 partial sums in vector lanes), one
// for the scaled product; the weight is widened in registers. Dispatch on active_isa().
#include "kernels/rms_norm.h"

#include <cmath>

#include "core/check.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/simd.h"
#include "kernels/isa.h"

HS_SILENCE_GCC12_AVX512_WARNINGS

namespace hotswap::kernels {
namespace {

using detail::widen_scalar;

// Below this many elements a parallel region costs more than it saves.
constexpr int64_t kMinParallelElements = int64_t{1} << 15;

float inv_rms(double sum_sq, int64_t dim, float eps) {
  return 1.0f / std::sqrt(static_cast<float>(sum_sq / static_cast<double>(dim)) + eps);
}

template <DType D>
void rms_norm_row_scalar(const float* x, int64_t dim, const void* w, float eps, float* y) {
  float acc[4] = {};
  int64_t c = 0;
  for (; c + 4 <= dim; c += 4)
    for (int t = 0; t < 4; ++t) acc[t] += x[c + t] * x[c + t];
  for (; c < dim; ++c) acc[0] += x[c] * x[c];
  const float r = inv_rms(double{acc[0]} + acc[1] + acc[2] + acc[3], dim, eps);
  for (c = 0; c < dim; ++c) y[c] = (x[c] * r) * widen_scalar<D>(w, c);
}

template <DType D>
HS_TARGET_AVX2 void rms_norm_row_avx2(const float* x, int64_t dim, const void* w, float eps, float* y) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0;
  int64_t c = 0;
  for (; c + 16 <= dim; c += 16) {
    const __m256 v0 = _mm256_loadu_ps(x + c), v1 = _mm256_loadu_ps(x + c + 8);
    a0 = _mm256_fmadd_ps(v0, v0, a0);
    a1 = _mm256_fmadd_ps(v1, v1, a1);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_add_ps(a0, a1));
  double sum_sq = 0;
  for (float l : lanes) sum_sq += l;
  for (; c < dim; ++c) sum_sq += x[c] * x[c];
  const float r = inv_rms(sum_sq, dim, eps);
  const __m256 rv = _mm256_set1_ps(r);
  const auto* wb = static_cast<const uint8_t*>(w);
  for (c = 0; c + 8 <= dim; c += 8)
    _mm256_storeu_ps(y + c, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + c), rv),
                                          detail::widen8_avx2<D>(wb + c * detail::elem_bytes(D))));
  for (; c < dim; ++c) y[c] = (x[c] * r) * widen_scalar<D>(w, c);
}

template <DType D>
HS_TARGET_AVX512 void rms_norm_row_avx512(const float* x, int64_t dim, const void* w, float eps, float* y) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0;
  int64_t c = 0;
  for (; c + 32 <= dim; c += 32) {
    const __m512 v0 = _mm512_loadu_ps(x + c), v1 = _mm512_loadu_ps(x + c + 16);
    a0 = _mm512_fmadd_ps(v0, v0, a0);
    a1 = _mm512_fmadd_ps(v1, v1, a1);
  }
  for (; c < dim; c += 16) {
    const __m512 v =
        _mm512_maskz_loadu_ps(static_cast<__mmask16>(dim - c >= 16 ? 0xffff : (1u << (dim - c)) - 1), x + c);
    a0 = _mm512_fmadd_ps(v, v, a0);
  }
  const float r = inv_rms(_mm512_reduce_add_ps(_mm512_add_ps(a0, a1)), dim, eps);
  const __m512 rv = _mm512_set1_ps(r);
  const auto* wb = static_cast<const uint8_t*>(w);
  for (c = 0; c < dim; c += 16) {
    const int count = dim - c >= 16 ? 16 : static_cast<int>(dim - c);
    const __mmask16 mask = static_cast<__mmask16>(count == 16 ? 0xffff : (1u << count) - 1);
    const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, x + c), rv);
    _mm512_mask_storeu_ps(y + c, mask,
                          _mm512_mul_ps(v, detail::widen16_avx512<D>(wb + c * detail::elem_bytes(D), count)));
  }
}

using RowFn = void (*)(const float*, int64_t, const void*, float, float*);

template <DType D>
RowFn row_fn(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return rms_norm_row_avx512<D>;
    case Isa::kAvx2:
      return rms_norm_row_avx2<D>;
    case Isa::kScalar:
      break;
  }
  return rms_norm_row_scalar<D>;
}

}  // namespace

void rms_norm(const float* x, int64_t rows, int64_t dim, const TensorView& weight, float eps, float* y) {
  HS_CHECK(weight.numel() == dim) << "rms_norm weight " << shape_string(weight.shape) << " for dim " << dim;
  HS_CHECK(weight.dtype == DType::kF32 || weight.dtype == DType::kBF16 || weight.dtype == DType::kF16)
      << "rms_norm weight dtype " << dtype_name(weight.dtype);
  if (rows <= 0 || dim <= 0) return;
  const Isa isa = active_isa();
  const RowFn fn = weight.dtype == DType::kBF16  ? row_fn<DType::kBF16>(isa)
                   : weight.dtype == DType::kF16 ? row_fn<DType::kF16>(isa)
                                                 : row_fn<DType::kF32>(isa);
  const void* w = weight.data;
  detail::for_each_index(rows, rows > 1 && rows * dim >= kMinParallelElements,
                         [&](int64_t r) { fn(x + r * dim, dim, w, eps, y + r * dim); });
}

}  // namespace hotswap::kernels
