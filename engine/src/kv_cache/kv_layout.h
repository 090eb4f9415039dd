// Shape of the paged KV cache. Storage is one array per layer for keys and one for values,
// each [num_blocks][num_kv_heads][block_size] rows of one (position, KV head) each: a block
// holds block_size consecutive positions of every KV head, so a head's keys within a block
// are contiguous. A row is head_dim elements of `dtype`, or for q8 the quantised row of
// kv_q8.h; sizes below count storage units (kv_dtype_size bytes each).
//
// A head page is the block_size rows of one KV head of one block in one layer: a "lane"
// (layer, KV head) of a block. Head pages are numbered across the whole cache,
// page = (layer * num_blocks + block) * num_kv_heads + kv_head, so page g lies
// g * head_elems() units past the first layer's base (KvStorage keeps the layers back to back).
// Per-KV-head release (HeadPagePool) keeps only the lanes dense heads read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/engine_config.h"

namespace hotswap {

// A logical block that holds no physical block (never allocated, or released because no
// future query can see it).
inline constexpr int32_t kNoBlock = -1;

// Element type of the stored K and V. kBf16 keeps the upper half of each float32 (rounded to
// nearest even when written): half the bytes per token and per attention read. kQ8 stores
// each row as int8 values with one float32 scale per kKvQ8Block of them (llama.cpp q8_0
// semantics, kv_q8.h): 9/32 of the float32 bytes.
enum class KvDtype : uint8_t { kF32, kBf16, kQ8 };

inline constexpr int kKvQ8Block = 32;  // values per q8 scale; q8 needs head_dim % 32 == 0

// Bytes of one storage unit: a float32, a bf16, or one byte of a q8 row.
inline size_t kv_dtype_size(KvDtype t) { return t == KvDtype::kBf16 ? 2 : t == KvDtype::kQ8 ? 1 : 4; }
inline const char* kv_dtype_name(KvDtype t) { return t == KvDtype::kBf16 ? "bf16" : t == KvDtype::kQ8 ? "q8" : "f32"; }
// Storage units of one K or V row of head_dim elements: head_dim, or for q8 the head_dim int8
// values then head_dim / 32 float32 scales (a multiple of 4 bytes: the scales stay aligned).
inline size_t kv_row_units(KvDtype t, int head_dim) {
  const size_t d = static_cast<size_t>(head_dim);
  return t == KvDtype::kQ8 ? d + d / kKvQ8Block * sizeof(float) : d;
}

// engine.kv_cache_dtype's storage form.
inline KvDtype kv_dtype_of(KvCacheDtype t) {
  return t == KvCacheDtype::kBf16 ? KvDtype::kBf16 : t == KvCacheDtype::kQ8 ? KvDtype::kQ8 : KvDtype::kF32;
}

// Why a cache of `dtype` cannot hold rows of head_dim values ("" if it can): q8 needs whole
// blocks of kKvQ8Block. The text names the head dim, for load errors.
inline std::string kv_dtype_shape_error(KvDtype dtype, int head_dim) {
  if (dtype != KvDtype::kQ8 || head_dim % kKvQ8Block == 0) return "";
  return "kv_cache_dtype q8 needs a head dim that is a multiple of " + std::to_string(kKvQ8Block) +
         " (blocks of 32 values per scale); this model's head dim is " + std::to_string(head_dim) + " (use f32 or bf16)";
}

struct KvLayout {
  int num_layers = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int block_size = 16;
  int64_t num_blocks = 0;
  KvDtype dtype = KvDtype::kF32;

  // In storage units (kv_dtype_size bytes each); elements for f32 and bf16.
  size_t row_units() const { return kv_row_units(dtype, head_dim); }
  size_t block_elems() const { return static_cast<size_t>(num_kv_heads) * block_size * row_units(); }
  size_t head_elems() const { return static_cast<size_t>(block_size) * row_units(); }
  int lanes_per_block() const { return num_layers * num_kv_heads; }
  // Head pages have int32 numbers only up to this many blocks (else no per-KV-head release).
  bool head_pages_fit() const {
    return num_blocks * static_cast<int64_t>(lanes_per_block()) <= INT32_MAX;
  }
  size_t layer_elems() const { return static_cast<size_t>(num_blocks) * block_elems(); }
  size_t bytes_per_block_all_layers() const { return 2 * num_layers * block_elems() * kv_dtype_size(dtype); }
};

}  // namespace hotswap
