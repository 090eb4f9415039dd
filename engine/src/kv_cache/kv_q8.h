// The q8 form of a K or V row (engine.kv_cache_dtype q8; llama.cpp q8_0 semantics): the row's
// head_dim values are cut into blocks of kKvQ8Block = 32; each block stores 32 int8 values q
// in [-127, 127] and one scale d = max|x| / 127, and x is read back as q * d.
//
// Row layout (kv_row_units(kQ8, head_dim) bytes): the head_dim int8 values, then the
// head_dim / 32 scales as float32. The values first keep each block's 32 bytes contiguous
// for the widening loads; float32 scales (not f16) cost 6% more bytes than f16 ones
// (144 vs 136 bytes at head_dim 128, vs 512 for float32 rows) but need no conversion in the
// kernels and keep the bound exact: the stored d is the d the values were rounded with, so
// |x - q*d| <= d/2 (plus the float32 rounding of q*d, below 127*d*2^-24).
#pragma once

#include <cstdint>
#include <cstring>

#include "kv_cache/kv_layout.h"

namespace hotswap {

// Scale of block b of a q8 row (read through memcpy: the bytes hold a float32).
inline float kv_q8_scale(const int8_t* row, int head_dim, int b) {
  float d;
  std::memcpy(&d, row + head_dim + b * static_cast<int>(sizeof(float)), sizeof(float));
  return d;
}

// src[head_dim] -> one q8 row. The one quantiser of every K/V write (prompt and decode):
// deterministic, q = rint(x / d) (nearest, ties to even), clamped to [-127, 127]; a block of
// zeros (or of values so small that d underflows to 0) stores q = 0, d = 0. head_dim must be
// a multiple of 32 (checked when the cache is planned). Finite input is assumed.
void quantize_kv_row_q8(const float* src, int head_dim, int8_t* dst);

// One q8 row -> dst[head_dim] = float(q) * d, the values every q8 reader computes with.
void dequantize_kv_row_q8(const int8_t* row, int head_dim, float* dst);

}  // namespace hotswap
