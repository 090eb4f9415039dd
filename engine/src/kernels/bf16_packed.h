// BF16 weights repacked once at load for AMX (LinearPrecision::kBf16Dot on CPUs with AMX-BF16,
// kernels/isa.h amx_enabled()): linear() multiplies row-major W with AMX only from
// kBf16DotMinRows rows, because rearranging W on every call costs what a decode step reads; W
// packed at load is multiplied with AMX at every row count, at the speed of reading it.
//
// Layout: tiles of 32 W rows (output columns), each over the whole k padded to a multiple of
// 32 with zeros; within a tile, k-pair q of column c is the uint32 pairs[q * 32 + c] (the low
// half the even element), so 16 consecutive pairs of 16 columns are one AMX B tile. Rows past
// n are zero. Same size as W, rounded up.
//
// Arithmetic: x rounded to bf16 (nearest even) and AMX tdpbf16ps over k in order from zero,
// as linear()'s AMX form: y is bitwise the same as linear()'s at m >= kBf16DotMinRows, and a
// row's result does not depend on the other rows at any m (decode alone or in any batch).
// The bound is kBf16Dot's (kernels/linear.h).
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace hotswap::kernels {

struct Bf16Packed {
  const uint32_t* pairs = nullptr;  // bf16_packed_words(n, k), 64-byte aligned; owned elsewhere
  int64_t n = 0, k = 0;

  bool empty() const { return pairs == nullptr; }
};

int64_t bf16_packed_words(int64_t n, int64_t k);

// Packs a 2-D BF16 tensor into `out` (bf16_packed_words of its shape); runs on the OpenMP threads.
void pack_bf16_weights(const TensorView& w, uint32_t* out);

// True when linear_bf16_packed applies: kBf16Dot is on and amx_enabled().
bool bf16_packed_applies();

// y[m, n] = x[m, k] · W^T (+ bias[n]) from packed W; needs bf16_packed_applies(). x and y are
// row-major float32 and do not overlap; bias is [n] or null.
void linear_bf16_packed(const float* x, int64_t m, const Bf16Packed& w, const float* bias, float* y);

}  // namespace hotswap::kernels
