// Shape of the paged KV cache. Storage is one array per layer for keys and one for values,
// each [num_blocks][num_kv_heads][block_size][head_dim] of `dtype` elements: a block holds
// block_size consecutive positions of every KV head, so a head's keys within a block are
// contiguous.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hotswap {

// A logical block that holds no physical block (never allocated, or released because no
// future query can see it).
inline constexpr int32_t kNoBlock = -1;

// Element type of the stored K and V. kBf16 keeps the upper half of each float32 (rounded to
// nearest even when written): half the bytes per token and per attention read.
enum class KvDtype : uint8_t { kF32, kBf16 };

inline size_t kv_dtype_size(KvDtype t) { return t == KvDtype::kBf16 ? 2 : 4; }
inline const char* kv_dtype_name(KvDtype t) { return t == KvDtype::kBf16 ? "bf16" : "f32"; }

struct KvLayout {
  int num_layers = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int block_size = 16;
  int64_t num_blocks = 0;
  KvDtype dtype = KvDtype::kF32;

  size_t block_elems() const { return static_cast<size_t>(num_kv_heads) * block_size * head_dim; }
  size_t head_elems() const { return static_cast<size_t>(block_size) * head_dim; }
  size_t layer_elems() const { return static_cast<size_t>(num_blocks) * block_elems(); }
  size_t bytes_per_block_all_layers() const { return 2 * num_layers * block_elems() * kv_dtype_size(dtype); }
};

}  // namespace hotswap
