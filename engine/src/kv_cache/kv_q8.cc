#include "kv_cache/kv_q8.h"

#include <cmath>

namespace hotswap {

void quantize_kv_row_q8(const float* src, int head_dim, int8_t* dst) {
  for (int b = 0; b * kKvQ8Block < head_dim; ++b) {
    const float* x = src + b * kKvQ8Block;
    float amax = 0.0f;
    for (int i = 0; i < kKvQ8Block; ++i) amax = std::fmax(amax, std::fabs(x[i]));
    float d = amax / 127.0f;
    // Near FLT_MAX, amax / 127 may round up so that 127 * d overflows: read back, the block's
    // maximum would be inf. One step down keeps it finite (and the bound: 127 * d is then
    // within a few ulps of amax).
    if (std::isinf(127.0f * d)) d = std::nextafter(d, 0.0f);
    int8_t* q = dst + b * kKvQ8Block;
    if (d == 0.0f) {
      std::memset(q, 0, kKvQ8Block);
    } else {
      // x / d (not x * (1/d)): one rounding before rint, so |x/d - q| <= 1/2 holds.
      for (int i = 0; i < kKvQ8Block; ++i) q[i] = static_cast<int8_t>(std::fmax(-127.0f, std::fmin(127.0f, std::rint(x[i] / d))));
    }
    std::memcpy(dst + head_dim + b * static_cast<int>(sizeof(float)), &d, sizeof(float));
  }
}

void dequantize_kv_row_q8(const int8_t* row, int head_dim, float* dst) {
  for (int b = 0; b * kKvQ8Block < head_dim; ++b) {
    const float d = kv_q8_scale(row, head_dim, b);
    for (int i = b * kKvQ8Block; i < (b + 1) * kKvQ8Block; ++i) dst[i] = static_cast<float>(row[i]) * d;
  }
}

}  // namespace hotswap
