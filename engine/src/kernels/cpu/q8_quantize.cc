// q8 / q4 quantisation: weights at load time (quantize_weights) and the scalar form of the activations'
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

// The largest weight an f16 scale can represent: 127 · 65504 (q8), 7 · 65504 (q4).
float max_abs_weight(QuantFormat f) {
  return (f == QuantFormat::kQ4 ? 7.0f : 127.0f) * 65504.0f;
}

// The smallest f16 scale d >= target, so no weight needs clamping.
uint16_t half_rounded_up(float target) {
  uint16_t h = f32_to_f16(target);
  if (f16_to_f32(h) < target) ++h;  // positive halves are ordered like their bit patterns
  return h;
}

// Where the code of (panel, block b, row r, column c) lives: q8 byte, or q4 byte and nibble.
size_t qs_index(QuantFormat f, int64_t panel, int64_t blocks, int64_t b, int64_t r, int64_t c, int* shift) {
  const int64_t base = (panel * blocks + b) * panel_block_bytes(f);
  if (f == QuantFormat::kQ8) return static_cast<size_t>(base + (c / 4) * 64 + r * 4 + c % 4);
  *shift = c < 16 ? 0 : 4;
  return static_cast<size_t>(base + ((c % 16) / 4) * 64 + r * 4 + c % 4);
}

// A block's scale (as an f16 with its sign) and its codes in offset form (q8: q + 128;
// q4: q + 8), from `len` <= 32 finite weights; the codes past len are the offset (zero).
uint16_t quantize_block(QuantFormat f, const float* w, int64_t len, uint8_t* codes) {
  float pos = 0, neg = 0;  // the largest weight and the largest -weight (both >= 0)
  for (int64_t c = 0; c < len; ++c) pos = std::max(pos, w[c]), neg = std::max(neg, -w[c]);
  uint16_t h;
  if (f == QuantFormat::kQ8) {
    h = half_rounded_up(std::max(pos, neg) / 127.0f);
  } else {
    // -8 steps for one side, 7 for the other: the sign whose |d| is smaller (d > 0 on a tie).
    const float up = std::max(neg / 8.0f, pos / 7.0f), down = std::max(pos / 8.0f, neg / 7.0f);
    h = down < up ? static_cast<uint16_t>(half_rounded_up(down) | 0x8000) : half_rounded_up(up);
  }
  const float d = f16_to_f32(h);
  const float lo = f == QuantFormat::kQ8 ? -127.0f : -8.0f, hi = f == QuantFormat::kQ8 ? 127.0f : 7.0f;
  // The clamp never binds (|d| is rounded up); it only keeps the cast defined.
  for (int64_t c = 0; c < kQ8Block; ++c) {
    const float q = c < len && d != 0 ? std::rint(w[c] / d) : 0.0f;
    codes[c] = static_cast<uint8_t>(static_cast<int>(std::clamp(q, lo, hi)) + code_offset(f));
  }
  return h;
}

// One row of W: returns false (and the bad column) for a weight the format cannot represent.
bool quantize_row(QuantFormat f, const float* row, int64_t k, int64_t panel, int64_t r, int64_t blocks, uint8_t* qs,
                  uint16_t* scales, int64_t* bad_col) {
  const float max_abs = max_abs_weight(f);
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t c0 = b * kQ8Block, len = std::min(kQ8Block, k - c0);
    for (int64_t c = 0; c < len; ++c) {
      if (!(std::fabs(row[c0 + c]) <= max_abs)) {  // also catches NaN and infinities
        *bad_col = c0 + c;
        return false;
      }
    }
    uint8_t codes[kQ8Block];
    scales[(panel * blocks + b) * kQ8PanelRows + r] = quantize_block(f, row + c0, len, codes);
    if (f == QuantFormat::kQ8) {  // 8 quads of 4 bytes to their places in the panel
      for (int64_t quad = 0; quad < kQ8Block / 4; ++quad)
        std::memcpy(qs + qs_index(f, panel, blocks, b, r, quad * 4, nullptr), codes + quad * 4, 4);
    } else {  // columns c and c + 16 share a byte
      int shift = 0;
      for (int64_t c = 0; c < kQ8Block / 2; ++c)
        qs[qs_index(f, panel, blocks, b, r, c, &shift)] = static_cast<uint8_t>(codes[c] | codes[c + 16] << 4);
    }
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

std::string quantize_weights(const TensorView& w, QuantFormat format, uint8_t* qs, uint16_t* scales) {
  HS_CHECK(w.shape.size() == 2) << "quantize_weights: weight must be 2-D, got " << shape_string(w.shape);
  HS_CHECK(w.dtype == DType::kF32 || w.dtype == DType::kBF16 || w.dtype == DType::kF16)
      << "quantize_weights: dtype " << dtype_name(w.dtype) << " unsupported";
  const int64_t n = w.shape[0], k = w.shape[1], panels = q8_panels(n), blocks = q8_blocks(k);
  // Padding: code 0 (offset 128, or 8 in both nibbles) and scale 0 wherever no weight lands.
  std::memset(qs, format == QuantFormat::kQ4 ? 0x88 : 128, static_cast<size_t>(quant_qs_bytes(format, n, k)));
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
        if (!quantize_row(format, row.data(), k, p, r, blocks, qs, scales, &bad)) {
          std::lock_guard lock(error_mu);
          if (!failed.exchange(true))
            error = "weight [" + std::to_string(j) + ", " + std::to_string(bad) +
                    "] = " + std::to_string(row[static_cast<size_t>(bad)]) + " cannot be stored as " +
                    quant_format_name(format);
        }
      }
    }
  }
  return error;
}

int quant_code(const Q8Matrix& w, int64_t j, int64_t c) {
  const int64_t blocks = q8_blocks(w.k), panel = j / kQ8PanelRows, r = j % kQ8PanelRows, b = c / kQ8Block;
  int shift = 0;
  const uint8_t byte = w.qs[qs_index(w.format, panel, blocks, b, r, c % kQ8Block, &shift)];
  const int code = w.format == QuantFormat::kQ4 ? (byte >> shift) & 15 : byte;
  return code - code_offset(w.format);
}

float q8_weight(const Q8Matrix& w, int64_t j, int64_t c) {
  const int64_t blocks = q8_blocks(w.k), b = c / kQ8Block;
  const uint16_t h = w.scales[((j / kQ8PanelRows) * blocks + b) * kQ8PanelRows + j % kQ8PanelRows];
  return static_cast<float>(quant_code(w, j, c)) * f16_to_f32(h);
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
