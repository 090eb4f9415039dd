// One layer of the paged KV cache seen through one sequence's block table: where the key and
// value rows of (position, KV head) live. Every attention backend reads the cache this way.
//
// The rows are float32, bf16 or q8 (`dtype`). The fast kernels read every form directly
// (templated on the stored unit); the scalar readers (references, key summaries, NSA's
// compression) go through key_row/value_row, which hand out the float32 row in place or
// widen a bf16 row / dequantise a q8 row into the caller's buffer, so they see exactly the
// values the kernels compute with. key()/value() are for float32 views only.
//
// A logical block is either a whole block (blocks[i] >= 0: every KV head's rows) or, after
// per-KV-head release, kNoBlock with one head page per lane that kept its KV (lane_pages;
// kNoBlock for a released lane). Only the paged kernel and the reference kernel read head
// pages: the patterns that release per head are `mixed`'s.
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
  KvDtype dtype = KvDtype::kF32;    // after the fields the float32 aggregate initialisers set
  // Per-KV-head release (BlockTable::lane_pages): this layer's column, row stride
  // lanes_per_block; head page g's rows start lane_origin + g * head units from the layer base.
  const int32_t* lane_pages = nullptr;
  int num_lane_blocks = 0;
  int lanes_per_block = 0;
  int64_t lane_origin = 0;

  // The head page of (logical block, KV head) when the block was split per head, else kNoBlock.
  int32_t lane_page(int block, int kv_head) const {
    return block < num_lane_blocks ? lane_pages[static_cast<size_t>(block) * lanes_per_block + kv_head] : kNoBlock;
  }
  // Storage units (kv_dtype_size bytes each) from the layer base to the row (negative for a
  // head page that lies in an earlier layer's array).
  ptrdiff_t offset(int pos, int kv_head) const {
    const size_t ru = kv_row_units(dtype, head_dim);
    const int page = pos / block_size;
    const size_t slot = static_cast<size_t>(pos % block_size);
    const int32_t b = blocks[page];
    if (b >= 0) return static_cast<ptrdiff_t>(((static_cast<size_t>(b) * num_kv_heads + kv_head) * block_size + slot) * ru);
    const int32_t g = lane_page(page, kv_head);
    HS_CHECK(g >= 0) << "KV read of position " << pos << " (KV head " << kv_head << ") from a released page";
    return static_cast<ptrdiff_t>(lane_origin) + static_cast<ptrdiff_t>((static_cast<size_t>(g) * block_size + slot) * ru);
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
