// One layer of the paged KV cache seen through one sequence's block table: where the key and
// value rows of (position, KV head) live. Every attention backend reads the cache this way.
//
// The rows are float32, bf16 or q8 (`dtype`). The fast kernels read every form directly
// (templated on the stored unit); the scalar readers (references, key summaries, NSA's
// compression) go through key_row/value_row, which hand out the float32 row in place or
// widen a bf16 row / dequantise a q8 row into the caller's buffer, so they see exactly the
// values the kernels compute with. key()/value() are for float32 views only.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/check.h"
#include "core/dtype.h"
#include "kv_cache/kv_layout.h"
#include "kv_cache/kv_q8.h"

namespace hotswap {

struct PagedKvView {
  const void* k = nullptr;          // layer base, [num_blocks, Hkv, block_size] rows of dtype
  const void* v = nullptr;
  const int32_t* blocks = nullptr;  // logical -> physical block (kNoBlock if released)
  int num_logical_blocks = 0;
  int block_size = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  KvDtype dtype = KvDtype::kF32;    // last, so the float32 aggregate initialisers stay as they were

  // Storage units (kv_dtype_size bytes each) from the layer base to the row.
  size_t offset(int pos, int kv_head) const {
    const size_t b = static_cast<size_t>(blocks[pos / block_size]);
    return ((b * num_kv_heads + kv_head) * block_size + pos % block_size) * kv_row_units(dtype, head_dim);
  }
  const float* key(int pos, int kv_head) const { return f32(k) + offset(pos, kv_head); }
  const float* value(int pos, int kv_head) const { return f32(v) + offset(pos, kv_head); }

  // The row as float32: in place for a float32 view, else widened into buf[head_dim].
  const float* key_row(int pos, int kv_head, float* buf) const { return row(k, pos, kv_head, buf); }
  const float* value_row(int pos, int kv_head, float* buf) const { return row(v, pos, kv_head, buf); }

 private:
  const float* f32(const void* base) const {
    HS_CHECK(dtype == KvDtype::kF32) << "float32 read of a " << kv_dtype_name(dtype) << " KV view";
    return static_cast<const float*>(base);
  }
  const float* row(const void* base, int pos, int kv_head, float* buf) const {
    if (dtype == KvDtype::kF32) return static_cast<const float*>(base) + offset(pos, kv_head);
    if (dtype == KvDtype::kQ8) {
      dequantize_kv_row_q8(static_cast<const int8_t*>(base) + offset(pos, kv_head), head_dim, buf);
      return buf;
    }
    const uint16_t* src = static_cast<const uint16_t*>(base) + offset(pos, kv_head);
    for (int x = 0; x < head_dim; ++x) buf[x] = bf16_to_f32(src[x]);
    return buf;
  }
};

}  // namespace hotswap
