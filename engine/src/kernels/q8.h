// Quantised weights, 8-bit (q8) and 4-bit (q4): the layouts, load-time quantisation and the
// projection y = x·W^T. q4 shares q8's panels, scales, activations and arithmetic; only the
// weight codes are packed two to a byte (see "q4" below).
//
// Format (like llama.cpp's q8_0): each row of W is cut into blocks of 32 weights; a block is
// 32 int8 values q in [-127, 127] and one scale d, w ≈ q·d. d is an IEEE half (f16), as in
// q8_0: a batch-1 decode reads every weight once, so the scale's bytes are the only overhead
// (34 bytes per block, not 36 with f32); d is rounded *up* to the next half, so |w|/d <= 127
// and |w - q·d| <= d/2 holds exactly.
//
// Layout (chosen for the kernels, not the file): rows are grouped in panels of 16; for panel p
// and block b, qs holds 8 "quads" of 16 rows x 4 consecutive columns (64 bytes: one AVX-512
// vector, one vpdpbusd against 4 broadcast activations), and scales holds the 16 rows' f16
// scales. qs bytes are offset binary (q + 128), the unsigned operand of vpdpbusd; the offset
// is taken back once per block with the activations' sums. Rows past n and columns past k
// are padding with q = 0 (and scale 0).
//
// linear_q8 quantises x too, per row and block of 32, to int8 with a float32 scale (the
// rounding is the same on every ISA), sums q_w·q_x exactly in int32 per block and adds
// float(sum)·(d_w·d_x) into a float32 accumulator with one fma per block; a chunk of
// kQ8ChunkBlocks blocks is then added to y. Every ISA performs those float operations in the
// same order, so scalar, AVX2 and AVX-512 give bitwise the same y, and a row's result does not
// depend on the other rows of the call (m = 1 decode and batched steps agree bitwise).
//
// q4 (like llama.cpp's q4_0): a block is 32 codes q in [0, 15] and one f16 scale d,
// w ≈ (q - 8)·d. d may be negative: the sign is chosen so that the block's larger side gets the
// 8 steps of the negative half (-8..-1) and the other side 7, and |d| is the smallest half with
// every |w/d| within its side's steps (rounded up, as q8's), so no weight is clamped and
// |w - (q-8)·d| <= |d|/2. The qs layout is q8's with the 8 quads of a block folded in two: a
// panel-block is 4 "pairs" of 64 bytes, byte (row r, column e) of pair t holding column 4t+e in
// its low nibble and column 16+4t+e in its high one (llama.cpp's "j low, j+16 high" within a
// block), so one load and a mask or shift give quads t and t+4 as unsigned bytes for the
// same vpdpbusd; the offset 8 is taken back with the activations' sums as q8's 128 is. Padding
// is code 8 (zero) with scale 0. The arithmetic and its ISA / batch invariance are q8's.
//
// Accuracy, per element (xq·dx the quantised activations, wq·dw the quantised weights):
//   |y - sum_c wq·dw · xq·dx|      <= ~1e-6 · sum_c |wq·dw · xq·dx|   (float32 sums only)
//   |y - sum_c wq·dw · x|          <= that + sum_b dx_b/2 · sum_{c in b} |wq·dw|
//   |y - sum_c w · x|              <= that + sum_b dw_b/2 · sum_{c in b} |x|
#pragma once

#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace hotswap::kernels {

inline constexpr int64_t kQ8Block = 32;         // weights per scale
inline constexpr int64_t kQ8PanelRows = 16;     // rows interleaved in qs
inline constexpr int64_t kQ8ChunkBlocks = 8;    // blocks summed before y is updated
inline constexpr int64_t kQ8PanelBlockBytes = kQ8PanelRows * kQ8Block;  // 512 bytes of qs

enum class QuantFormat : uint8_t { kQ8, kQ4 };
inline const char* quant_format_name(QuantFormat f) { return f == QuantFormat::kQ4 ? "q4" : "q8"; }
// Bytes of one panel's block of codes, and the offset that makes the codes unsigned.
constexpr int64_t panel_block_bytes(QuantFormat f) {
  return f == QuantFormat::kQ4 ? kQ8PanelBlockBytes / 2 : kQ8PanelBlockBytes;
}
constexpr int32_t code_offset(QuantFormat f) { return f == QuantFormat::kQ4 ? 8 : 128; }

inline int64_t q8_panels(int64_t n) { return (n + kQ8PanelRows - 1) / kQ8PanelRows; }
inline int64_t q8_blocks(int64_t k) { return (k + kQ8Block - 1) / kQ8Block; }
inline int64_t quant_qs_bytes(QuantFormat f, int64_t n, int64_t k) {
  return q8_panels(n) * q8_blocks(k) * panel_block_bytes(f);
}
inline int64_t q8_qs_bytes(int64_t n, int64_t k) { return quant_qs_bytes(QuantFormat::kQ8, n, k); }
inline int64_t q8_scale_count(int64_t n, int64_t k) { return q8_panels(n) * q8_blocks(k) * kQ8PanelRows; }

// A q8 or q4 matrix W[n, k] in the layout above; the memory belongs to someone else. qs must
// be 64-byte aligned, scales 32-byte aligned.
struct Q8Matrix {
  const uint8_t* qs = nullptr;       // quant_qs_bytes(format, n, k)
  const uint16_t* scales = nullptr;  // q8_scale_count(n, k) halves
  int64_t n = 0, k = 0;
  QuantFormat format = QuantFormat::kQ8;

  bool empty() const { return qs == nullptr; }
};

// Quantises a 2-D F32/BF16/F16 tensor into qs / scales (sized as above). Runs on the OpenMP
// threads. Returns "" or what makes the tensor unrepresentable (a non-finite weight, or one
// beyond ±127·65504 for q8, ±7·65504 for q4, which an f16 scale cannot reach), naming the row
// and column.
std::string quantize_weights(const TensorView& w, QuantFormat format, uint8_t* qs, uint16_t* scales);

// The signed code of row j, column c (q8: q; q4: q - 8; 0 in the padding), and the
// dequantised weight code·d (tests, references and the scalar kernels).
int quant_code(const Q8Matrix& w, int64_t j, int64_t c);
float q8_weight(const Q8Matrix& w, int64_t j, int64_t c);

// y[m, n] = x[m, k] · W^T (+ bias[n]) with the arithmetic described above, for either format.
// x and y are row-major float32 and do not overlap; bias is [n] or null.
void linear_q8(const float* x, int64_t m, const Q8Matrix& w, const float* bias, float* y);

// The implementation linear_q8 dispatches to: "avx512_vnni", "avx2" (also AVX-512 CPUs without
// VNNI) or "scalar".
const char* linear_q8_isa();

// The oracle: x quantised exactly as linear_q8 does, products and sums in double.
void linear_q8_reference(const float* x, int64_t m, const Q8Matrix& w, const float* bias, float* y);

// The activations' quantisation of one row, as linear_q8 does it on every ISA: per block of
// 32, d = amax/127, q = round_to_nearest_even(x·(127/amax)), and the sum of the block's q.
// xq has q8_blocks(k)·32 entries (zero past k); xd and xsum have q8_blocks(k).
void quantize_row_q8(const float* x, int64_t k, int8_t* xq, float* xd, int32_t* xsum);

}  // namespace hotswap::kernels
