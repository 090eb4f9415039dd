// One layer of the paged KV cache seen through one sequence's block table: where the key and
// value rows of (position, KV head) live. Every attention backend reads the cache this way.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hotswap {

struct PagedKvView {
  const float* k = nullptr;         // layer base, [num_blocks, Hkv, block_size, d]
  const float* v = nullptr;
  const int32_t* blocks = nullptr;  // logical -> physical block (kNoBlock if released)
  int num_logical_blocks = 0;
  int block_size = 0;
  int num_kv_heads = 0;
  int head_dim = 0;

  size_t offset(int pos, int kv_head) const {
    const size_t b = static_cast<size_t>(blocks[pos / block_size]);
    return ((b * num_kv_heads + kv_head) * block_size + pos % block_size) * head_dim;
  }
  const float* key(int pos, int kv_head) const { return k + offset(pos, kv_head); }
  const float* value(int pos, int kv_head) const { return v + offset(pos, kv_head); }
};

}  // namespace hotswap
