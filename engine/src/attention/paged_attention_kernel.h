// Internal to attention/: the ISA-independent description of one work item of the paged
// kernel and the per-ISA entry points that run it (simd/attention_{avx512,avx2,scalar}.cc,
// all compiling paged_attention_simd.inc). paged_attention.cc builds the items, picks the
// ISA and merges/finalises the results (kernel_dispatch.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "attention/layer_attention.h"
#include "attention/online_softmax.h"

namespace hotswap::attention_detail {

inline constexpr int kTileKeys = 128;  // positions scored per online-softmax update
inline constexpr int kMaxGroup = 64;   // query heads per KV head the fast kernel handles

// A run of key positions [begin, end) that a query walks; `in_window` says whether the
// streaming branch sees these keys (the dense branch sees every walked key).
struct Segment {
  int begin = 0;
  int end = 0;
  bool in_window = false;
};

// One work item: the `group` query heads of KV head `kv_head` for one query token, over the
// keys of `segments`.
struct ItemArgs {
  const float* q = nullptr;       // [group, head_dim], RoPE applied
  float scale = 1.0f;
  int group = 1;
  int head_dim = 0;
  const void* k = nullptr;        // layer base, [num_blocks, num_kv_heads, block_size, head_dim] of `dtype`
  const void* v = nullptr;
  KvDtype dtype = KvDtype::kF32;  // the kernel is built for each; bf16 and q8 rows are widened in registers
  const int32_t* blocks = nullptr;
  int block_size = 0;
  int num_kv_heads = 0;
  int kv_head = 0;
  // Per-KV-head release (PagedKvView): split pages' head pages, numbered from the first layer.
  const int32_t* lane_pages = nullptr;
  int num_lane_blocks = 0;
  int lanes_per_block = 0;
  int64_t lane_origin = 0;
  const Segment* segments = nullptr;
  int num_segments = 0;
  const uint8_t* need_dense = nullptr;   // [group]: head h needs the dense branch
  const uint8_t* need_window = nullptr;  // [group]: head h needs the streaming branch
};

// The part of an item that follows from the layer call: the query heads of `kv_head` at the
// call's token `token` and the layer's paged K/V. Segments and branch flags are the caller's.
inline ItemArgs item_args(const LayerAttentionCall& c, int64_t token, int kv_head) {
  const int group = c.num_heads / c.num_kv_heads;
  ItemArgs a;
  a.q = c.q + (static_cast<size_t>(token) * c.num_heads + static_cast<size_t>(kv_head) * group) * c.head_dim;
  a.scale = c.scale;
  a.group = group;
  a.head_dim = c.head_dim;
  a.k = c.kv.k;
  a.v = c.kv.v;
  a.dtype = c.kv.dtype;
  a.blocks = c.kv.blocks;
  a.block_size = c.kv.block_size;
  a.num_kv_heads = c.num_kv_heads;
  a.kv_head = kv_head;
  a.lane_pages = c.kv.lane_pages;
  a.num_lane_blocks = c.kv.num_lane_blocks;
  a.lanes_per_block = c.kv.lanes_per_block;
  a.lane_origin = c.kv.lane_origin;
  return a;
}


// Per item output: for branch b (0 dense, 1 streaming) and head h, the online-softmax state
// (online_softmax.h) at state + (b * group + h) * state_stride(head_dim). A branch that saw
// no key has m = -inf, l = 0, acc = 0.
inline size_t state_floats(int group, int head_dim) { return 2 * static_cast<size_t>(group) * state_stride(head_dim); }
// The KvDtype whose rows are read as units of T (the kernels' template argument).
template <class T>
constexpr KvDtype kv_dtype_of() {
  return std::is_same_v<T, int8_t> ? KvDtype::kQ8 : std::is_same_v<T, uint16_t> ? KvDtype::kBf16 : KvDtype::kF32;
}

// Scratch one item needs (per thread); the last head_dim floats hold a bf16 or q8 row widened
// once for all the heads it serves (the portable build's way).
inline size_t scratch_floats(int group, int head_dim) {
  return 3 * static_cast<size_t>(group) * kTileKeys + 2 * static_cast<size_t>(group) * head_dim + 2 * group + head_dim;
}

using ItemKernel = void (*)(const ItemArgs& args, float* state, float* scratch);

ItemKernel scalar_item_kernel();
ItemKernel avx2_item_kernel();
ItemKernel avx512_item_kernel();

// Prefill blocks (paged_prefill_simd.inc): `num_tokens` consecutive query tokens of one call
// and one KV head, each attending densely to keys [0, its position], so every K/V row a tile
// loads serves all num_tokens * group query heads. Each query's output is bit for bit what
// run_item computes for it alone: the same products, the same dot-product summation tree,
// the same tiles and the same softmax and value-sum order. `item` describes the first token
// (its q, the layer's KV); its segments and branch flags are unused (every head dense).
inline constexpr int kMaxBlockStates = 64;  // query heads (tokens x group) one block scores
struct BlockArgs {
  ItemArgs item;
  int num_tokens = 1;
  int first_position = 0;     // position of the first token; token i is at first_position + i
  size_t q_token_stride = 0;  // floats from one token's q rows to the next token's
};

// Tokens per block for a group of `group` query heads (1: blocks would not share rows).
inline int block_tokens(int group) {
  const int t = kMaxBlockStates / (group > 0 ? group : 1);
  return t < 16 ? t : 16;
}

// Heads of a token whose value sums a block runs together (one head's accumulators would wait
// on the FMA latency).
inline constexpr int kValueHeads = 4;

// Scratch one block needs (per thread): the tile's K and V rows as float32, the scores of
// every query head (probabilities in place) and the tile value sums of kValueHeads heads.
inline size_t block_scratch_floats(int group, int head_dim, int num_tokens) {
  return 2 * static_cast<size_t>(kTileKeys) * head_dim + static_cast<size_t>(num_tokens) * group * kTileKeys +
         static_cast<size_t>(kValueHeads) * head_dim;
}

// A block's states are num_tokens items' states back to back (state_floats each).
using BlockKernel = void (*)(const BlockArgs& args, float* state, float* scratch);

// Null where the ISA's build cannot promise run_item's bits on widened rows (the portable
// build: its compiler may contract the widening dots differently from the float32 ones).
BlockKernel avx2_block_kernel();
BlockKernel avx512_block_kernel();

// Called by the kernels when a walked key lives in a released page: a broken invariant.
[[noreturn]] void released_page_read(int position);

}  // namespace hotswap::attention_detail
