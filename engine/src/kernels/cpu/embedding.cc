// embedding_lookup(): one row, widened to float32 with vector conversions. Dispatch on
// active_isa().
#include "kernels/embedding.h"

#include <cstring>

#include "core/check.h"
#include "kernels/cpu/simd.h"
#include "kernels/isa.h"

HS_SILENCE_GCC12_AVX512_WARNINGS

namespace hotswap::kernels {
namespace {

using detail::elem_bytes;

template <DType D>
void widen_row_scalar(const uint8_t* src, int64_t dim, float* out) {
  for (int64_t c = 0; c < dim; ++c) out[c] = detail::widen_scalar<D>(src, c);
}

template <DType D>
HS_TARGET_AVX2 void widen_row_avx2(const uint8_t* src, int64_t dim, float* out) {
  int64_t c = 0;
  for (; c + 8 <= dim; c += 8) _mm256_storeu_ps(out + c, detail::widen8_avx2<D>(src + c * elem_bytes(D)));
  for (; c < dim; ++c) out[c] = detail::widen_scalar<D>(src, c);
}

template <DType D>
HS_TARGET_AVX512 void widen_row_avx512(const uint8_t* src, int64_t dim, float* out) {
  for (int64_t c = 0; c < dim; c += 16) {
    const int count = dim - c >= 16 ? 16 : static_cast<int>(dim - c);
    const __mmask16 mask = static_cast<__mmask16>(count == 16 ? 0xffff : (1u << count) - 1);
    _mm512_mask_storeu_ps(out + c, mask, detail::widen16_avx512<D>(src + c * elem_bytes(D), count));
  }
}

template <DType D>
void widen_row(const uint8_t* src, int64_t dim, float* out) {
  switch (active_isa()) {
    case Isa::kAvx512:
      return widen_row_avx512<D>(src, dim, out);
    case Isa::kAvx2:
      return widen_row_avx2<D>(src, dim, out);
    case Isa::kScalar:
      return widen_row_scalar<D>(src, dim, out);
  }
}

}  // namespace

void embedding_lookup(const TensorView& table, int32_t id, float* out) {
  HS_CHECK(table.shape.size() == 2) << "embedding table must be 2-D, got " << shape_string(table.shape);
  HS_CHECK(id >= 0 && id < table.shape[0]) << "token id " << id << " outside vocab " << table.shape[0];
  const int64_t dim = table.shape[1];
  const auto* row =
      static_cast<const uint8_t*>(table.data) + id * dim * static_cast<int64_t>(dtype_size(table.dtype));
  switch (table.dtype) {
    case DType::kF32:
      return widen_row<DType::kF32>(row, dim, out);
    case DType::kBF16:
      return widen_row<DType::kBF16>(row, dim, out);
    case DType::kF16:
      return widen_row<DType::kF16>(row, dim, out);
    default:
      HS_CHECK(false) << "embedding table dtype " << dtype_name(table.dtype) << " unsupported";
  }
}

}  // namespace hotswap::kernels
