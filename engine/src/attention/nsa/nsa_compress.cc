#include "attention/nsa/nsa_compress.h"

#include <algorithm>
#include <cstdint>

#include "attention/nsa/nsa_math.h"

namespace hotswap::nsa_detail {

void add_position_embedding(const float* const* rows, const float* pos_emb, int l, int d, float* x) {
  for (int i = 0; i < l; ++i) {
    const float* r = rows[i];
    const float* p = pos_emb + static_cast<int64_t>(i) * d;
    float* y = x + static_cast<int64_t>(i) * d;
#pragma omp simd
    for (int c = 0; c < d; ++c) y[c] = r[c] + p[c];
  }
}

void compress_blocks(const NsaCompressor& side, int kv_head, int l, int d, int hidden, const float* x,
                     int num_blocks, float* scratch, float* out) {
  const int64_t in = static_cast<int64_t>(l) * d;
  if (side.method == NsaCompression::kMaxPool) {
    for (int b = 0; b < num_blocks; ++b) {
      const float* xb = x + b * in;
      float* o = out + static_cast<int64_t>(b) * d;
      std::copy_n(xb, d, o);
      for (int i = 1; i < l; ++i) {
        const float* r = xb + static_cast<int64_t>(i) * d;
#pragma omp simd
        for (int c = 0; c < d; ++c) o[c] = r[c] > o[c] ? r[c] : o[c];
      }
    }
    return;
  }
  const float* w1 = side.w1.data() + static_cast<int64_t>(kv_head) * hidden * in;
  const float* b1 = side.b1.data() + static_cast<int64_t>(kv_head) * hidden;
  const float* w2 = side.w2.data() + static_cast<int64_t>(kv_head) * d * hidden;
  const float* b2 = side.b2.data() + static_cast<int64_t>(kv_head) * d;
  // Hidden layer a tile of blocks at a time: each W1 row (l*d floats) is read once per tile
  // instead of once per block, so a prefill's MLP is bound by arithmetic, not memory.
  constexpr int kTile = 8;
  for (int b0 = 0; b0 < num_blocks; b0 += kTile) {
    const int tile = std::min(kTile, num_blocks - b0);
    for (int u = 0; u < hidden; ++u) {
      const float* row = w1 + static_cast<int64_t>(u) * in;
      for (int r = 0; r < tile; ++r) {
        const float v = dot(row, x + (b0 + r) * in, static_cast<int>(in)) + b1[u];
        scratch[static_cast<int64_t>(b0 + r) * hidden + u] = v > 0.0f ? v : 0.0f;
      }
    }
  }
  for (int b = 0; b < num_blocks; ++b) {
    const float* h = scratch + static_cast<int64_t>(b) * hidden;
    for (int c = 0; c < d; ++c) out[static_cast<int64_t>(b) * d + c] = dot(w2 + static_cast<int64_t>(c) * hidden, h, hidden) + b2[c];
  }
}

}  // namespace hotswap::nsa_detail
