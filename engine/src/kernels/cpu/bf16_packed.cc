// pack_bf16_weights(): row-major BF16 W into the AMX tile layout of kernels/bf16_packed.h.
// Load-time work, once per projection, on the OpenMP threads: with AVX-512 (every AMX CPU) the
// 16 x 16-pair register transpose linear() packs its call-time tiles with; else element by
// element.
#include "kernels/bf16_packed.h"

#include <algorithm>
#include <cstring>

#include "core/check.h"
#include "kernels/cpu/bf16_pairs.h"
#include "kernels/isa.h"

namespace hotswap::kernels {
namespace {

using detail::kPackedTileCols;

int64_t padded_pairs(int64_t k) {
  return detail::bf16_x_stride(k) / 2;
}

}  // namespace

int64_t bf16_packed_words(int64_t n, int64_t k) {
  return (n + kPackedTileCols - 1) / kPackedTileCols * kPackedTileCols * padded_pairs(k);
}

void pack_bf16_weights(const TensorView& w, uint32_t* out) {
  HS_CHECK(w.shape.size() == 2 && w.dtype == DType::kBF16)
      << "pack_bf16_weights: a 2-D BF16 tensor, got " << shape_string(w.shape) << " " << dtype_name(w.dtype);
  const int64_t n = w.shape[0], k = w.shape[1], pairs = padded_pairs(k);
  const int64_t tiles = (n + kPackedTileCols - 1) / kPackedTileCols, tile_words = pairs * kPackedTileCols;
  const auto* src = static_cast<const uint8_t*>(w.data);  // may be only 2-byte aligned
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t t = 0; t < tiles; ++t) {
    uint32_t* tile = out + t * tile_words;
    const int64_t cols = std::min(kPackedTileCols, n - t * kPackedTileCols);
    if (active_isa() == Isa::kAvx512) {
      detail::pack_w_tile_bf16(detail::WeightMatrix{DType::kBF16, w.data, n, k}, t * kPackedTileCols, cols, 0, k,
                               tile, kPackedTileCols / 16);
      const int64_t written = (k + 1) / 2 * kPackedTileCols;  // pairs the transpose filled
      std::fill(tile + written, tile + tile_words, 0u);
      continue;
    }
    std::fill(tile, tile + tile_words, 0u);
    for (int64_t c = 0; c < kPackedTileCols && t * kPackedTileCols + c < n; ++c) {
      const uint8_t* row = src + (t * kPackedTileCols + c) * k * 2;
      for (int64_t q = 0; q < k / 2; ++q) std::memcpy(tile + q * kPackedTileCols + c, row + q * 4, 4);
      if (k % 2 != 0) {  // the last pair's odd half is padding
        uint16_t last;
        std::memcpy(&last, row + (k - 1) * 2, 2);
        tile[(k / 2) * kPackedTileCols + c] = last;
      }
    }
  }
}

}  // namespace hotswap::kernels
