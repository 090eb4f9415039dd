// q8 quantisation: weights at load time (quantize_q8) and the scalar form of the activations'
// quantisation, which every ISA's quantize_x reproduces bit for bit (see kernels/q8.h).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <mutex>
#include <vector>

#include "core/check.h"
#include "kernels/q8.h"

namespace hotswap::kernels {
namespace {

// The largest weight an f16 scale can represent: 127 · 65504.
constexpr float kMaxAbsWeight = 127.0f * 65504.0f;

// The smallest f16 scale d with amax / d <= 127, so no weight needs clamping.
uint16_t scale_rounded_up(float amax) {
  const float target = amax / 127.0f;
  uint16_t h = f32_to_f16(target);
  if (f16_to_f32(h) < target) ++h;  // positive halves are ordered like their bit patterns
  return h;
}

size_t qs_index(int64_t panel, int64_t blocks, int64_t b, int64_t row_in_panel, int64_t col_in_block) {
  return static_cast<size_t>(((panel * blocks + b) * 8 + col_in_block / 4) * 64 + row_in_panel * 4 + col_in_block % 4);
}

// One row of W: returns false (and the bad column) for a weight q8 cannot represent.
bool quantize_row(const float* row, int64_t k, int64_t panel, int64_t r, int64_t blocks, uint8_t* qs,
                  uint16_t* scales, int64_t* bad_col) {
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t c0 = b * kQ8Block, len = std::min(kQ8Block, k - c0);
    float amax = 0;
    for (int64_t c = 0; c < len; ++c) {
      const float a = std::fabs(row[c0 + c]);
      if (!(a <= kMaxAbsWeight)) {  // also catches NaN and infinities
        *bad_col = c0 + c;
        return false;
      }
      amax = std::max(amax, a);
    }
    const uint16_t h = scale_rounded_up(amax);
    const float d = f16_to_f32(h);
    scales[(panel * blocks + b) * kQ8PanelRows + r] = h;
    // The block in a contiguous buffer first (a loop the compiler vectorises), then its 8
    // quads of 4 bytes to their places in the panel.
    uint8_t block[kQ8Block];
    for (int64_t c = 0; c < kQ8Block; ++c) {
      const float q = c < len && d > 0 ? std::rint(row[c0 + c] / d) : 0.0f;
      block[c] = static_cast<uint8_t>(static_cast<int>(std::clamp(q, -127.0f, 127.0f)) + 128);
    }
    for (int64_t quad = 0; quad < kQ8Block / 4; ++quad)
      std::memcpy(qs + qs_index(panel, blocks, b, r, quad * 4), block + quad * 4, 4);
  }
  return true;
}

// Row j of w as float32 (exact for every supported dtype).
void widen_row(const TensorView& w, int64_t j, int64_t k, float* out) {
  const auto* base = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(j * k) * dtype_size(w.dtype);
  if (w.dtype == DType::kF32) {
    std::memcpy(out, base, static_cast<size_t>(k) * sizeof(float));
    return;
  }
  for (int64_t c = 0; c < k; ++c) {
    uint16_t h;
    std::memcpy(&h, base + c * 2, 2);  // safetensors data may be only 2-byte aligned
    out[c] = w.dtype == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
  }
}

}  // namespace

std::string quantize_q8(const TensorView& w, uint8_t* qs, uint16_t* scales) {
  HS_CHECK(w.shape.size() == 2) << "quantize_q8: weight must be 2-D, got " << shape_string(w.shape);
  HS_CHECK(w.dtype == DType::kF32 || w.dtype == DType::kBF16 || w.dtype == DType::kF16)
      << "quantize_q8: dtype " << dtype_name(w.dtype) << " unsupported";
  const int64_t n = w.shape[0], k = w.shape[1], panels = q8_panels(n), blocks = q8_blocks(k);
  // Padding: q = 0 (offset 128) and scale 0 wherever no weight lands.
  std::memset(qs, 128, static_cast<size_t>(q8_qs_bytes(n, k)));
  std::memset(scales, 0, static_cast<size_t>(q8_scale_count(n, k)) * sizeof(uint16_t));
  std::atomic<bool> failed{false};
  std::mutex error_mu;
  std::string error;
#pragma omp parallel
  {
    std::vector<float> row(static_cast<size_t>(k));
#pragma omp for schedule(dynamic, 4)
    for (int64_t p = 0; p < panels; ++p) {
      for (int64_t r = 0; r < kQ8PanelRows && !failed.load(std::memory_order_relaxed); ++r) {
        const int64_t j = p * kQ8PanelRows + r;
        if (j >= n) break;
        widen_row(w, j, k, row.data());
        int64_t bad = 0;
        if (!quantize_row(row.data(), k, p, r, blocks, qs, scales, &bad)) {
          std::lock_guard lock(error_mu);
          if (!failed.exchange(true))
            error = "weight [" + std::to_string(j) + ", " + std::to_string(bad) + "] = " +
                    std::to_string(row[static_cast<size_t>(bad)]) + " cannot be stored as q8";
        }
      }
    }
  }
  return error;
}

float q8_weight(const Q8Matrix& w, int64_t j, int64_t c) {
  const int64_t blocks = q8_blocks(w.k), panel = j / kQ8PanelRows, r = j % kQ8PanelRows, b = c / kQ8Block;
  const int q = static_cast<int>(w.qs[qs_index(panel, blocks, b, r, c % kQ8Block)]) - 128;
  return static_cast<float>(q) * f16_to_f32(w.scales[(panel * blocks + b) * kQ8PanelRows + r]);
}

void quantize_row_q8(const float* x, int64_t k, int8_t* xq, float* xd, int32_t* xsum) {
  const int64_t blocks = q8_blocks(k);
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t c0 = b * kQ8Block, len = std::min(kQ8Block, k - c0);
    float amax = 0;
    for (int64_t c = 0; c < len; ++c) amax = std::max(amax, std::fabs(x[c0 + c]));
    const float inv = amax > 0 ? 127.0f / amax : 0.0f;
    int32_t sum = 0;
    for (int64_t c = 0; c < kQ8Block; ++c) {
      // As the SIMD forms: cvtps rounds to nearest even (as rint does) and turns NaN and
      // values beyond int32 (x·inf when amax is tiny) into INT_MIN, which clamps to -127.
      float q = c < len ? std::rint(x[c0 + c] * inv) : 0.0f;
      q = std::fabs(q) < 2147483648.0f ? std::clamp(q, -127.0f, 127.0f) : -127.0f;
      xq[c0 + c] = static_cast<int8_t>(q);
      sum += static_cast<int32_t>(q);
    }
    xd[b] = amax / 127.0f;
    xsum[b] = sum;
  }
}

}  // namespace hotswap::kernels
