// Internal to attention/masked/: the ISA-independent description of one work item of the
// sparse kernel (an item's keys, or one split of them) and the per-ISA entry points that run
// it (attention/simd/attention_{avx512,avx2,scalar}.cc, all compiling
// sparse_attention_simd.inc, with the vector primitives the paged kernel uses).
// sparse_attention.cc builds the work items, picks the ISA and merges/finalises the results
// (attention/kernel_dispatch.h).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "attention/masked/sparse_attention.h"
#include "attention/online_softmax.h"

namespace hotswap::attention_detail {

// Keys located per tile (and per online-softmax update): the tile's K and V rows (16 KiB in
// bf16 at d 64) and the next tile's, prefetched meanwhile, stay in L1 while every query head
// of the group reads them.
inline constexpr int kSparseTileKeys = 64;
inline constexpr int kSparseMaxGroup = 64;   // query heads per KV head
// Below this many keys per split a split costs more in merging than it gains.
inline constexpr int kSparseMinKeysPerSplit = 256;

struct SparseItemArgs {
  const float* q = nullptr;  // [group, head_dim]
  float scale = 1.0f;
  int group = 1;
  int head_dim = 0;
  const void* k = nullptr;  // the KV head's rows in block 0: layer base + kv_head * block_size rows
  const void* v = nullptr;
  KvDtype dtype = KvDtype::kF32;  // element type of k and v (bf16 and q8 rows are widened in registers)
  const int32_t* blocks = nullptr;
  int num_logical_blocks = 0;
  int block_size = 0;
  size_t block_stride = 0;   // storage units per physical block (all KV heads; elements for f32/bf16)
  const int32_t* keys = nullptr;  // this split's keys
  int num_keys = 0;
  const float* bias = nullptr;    // bias of keys[0] for head 0; head h's at bias + h * bias_stride
  size_t bias_stride = 0;         // the item's num_keys
};

// Per work item output, for head h at state + h * sparse_state_stride(head_dim): the
// online-softmax state (attention/online_softmax.h) over the keys the head attends. A head
// that attended no key has m = -inf, l = 0, acc = 0.
inline size_t sparse_state_stride(int head_dim) { return state_stride(head_dim); }
inline size_t sparse_state_floats(int group, int head_dim) {
  return static_cast<size_t>(group) * sparse_state_stride(head_dim);
}
// Scratch one work item needs (per thread): one head's scores and probabilities over a tile,
// and its tile value sum.
inline size_t sparse_scratch_floats(int head_dim) { return 2 * static_cast<size_t>(kSparseTileKeys) + head_dim; }

// The keys of a tile one query head attends (bias != -inf), compacted to the front of the
// outputs in order: their K rows, V rows and biases; returns how many. The portable form,
// without a branch per key (the AVX-512 build compresses 8 keys at a time instead). The
// outputs have room for n + kSparseCompactSlack entries.
inline constexpr int kSparseCompactSlack = 8;
template <class T>
inline int compact_attended_portable(const float* bias, int n, const T* const* k_rows, const T* const* v_rows,
                                     const T** k_out, const T** v_out, float* bias_out) {
  int c = 0;
  for (int j = 0; j < n; ++j) {
    k_out[c] = k_rows[j];
    v_out[c] = v_rows[j];
    bias_out[c] = bias[j];
    c += bias[j] != -INFINITY;
  }
  return c;
}

using SparseItemKernel = void (*)(const SparseItemArgs& args, float* state, float* scratch);

SparseItemKernel sparse_scalar_item_kernel();
SparseItemKernel sparse_avx2_item_kernel();
SparseItemKernel sparse_avx512_item_kernel();

// Called by the kernels for a key outside the block table, in a released page, or not
// above the previous key: a broken invariant.
[[noreturn]] void sparse_bad_key(int position, int previous, int64_t limit, bool released_page);

// sparse_attention() with the splitting policy spelt out, for tests: an item is cut into
// clamp(num_keys / min_keys_per_split, 1, max_splits) runs of (nearly) equal key counts.
// max_splits = 1 never splits.
void sparse_attention_run(const SparseAttentionItem* items, int num_items, int max_splits, int min_keys_per_split);

}  // namespace hotswap::attention_detail
