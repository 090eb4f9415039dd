// Sparse attention over the paged KV cache, the kernel behind the `masked` implementation:
// for one query token and one KV head, attend only a chosen list of key positions, with a
// per-query-head additive bias on every chosen key.
//
// out_h = softmax_j(scale * q_h . k_j + bias[h][j]) . v_j over the item's keys j. A bias of
// -INFINITY removes key j from head h's softmax exactly (its weight is 0, not ~1e-38), and a
// head whose every bias is -INFINITY (or an item with no keys) gets a zero output row.
//
// Like the paged kernel (attention/paged_attention.h): each K and V row is gathered through
// the block table once per item and serves all `group` query heads; an online softmax per
// head over tiles of keys; one OpenMP parallel region over the items, and over key splits
// (flash-decoding, merged exactly) when there are fewer items than threads and many keys.
// The vector code is compiled three times (AVX-512, AVX2+FMA, scalar) and chosen at run time
// by kernels::active_isa().
#pragma once

#include <cstdint>

#include "kv_cache/paged_kv_view.h"

namespace hotswap {

struct SparseAttentionItem {
  const float* q = nullptr;        // [group, head_dim]: the query heads of this KV head for one token (contiguous)
  int group = 1;                   // query heads per KV head (1..64)
  int kv_head = 0;
  const PagedKvView* kv = nullptr;
  const int32_t* keys = nullptr;   // positions to read, strictly ascending (the union over the group's heads)
  int num_keys = 0;
  const float* bias = nullptr;     // [group, num_keys] additive logit bias; -INFINITY = this head does not attend that key
  float scale = 1.0f;              // multiplies q.k before the bias
  float* out = nullptr;            // [group, head_dim]
};

// Computes every item: one OpenMP parallel region over the items (and over key splits when
// there are fewer than two items per thread), unless already inside a parallel region (then
// serial). Thread-safe for distinct outputs. A key outside the view's block table, a key in
// a released page (kNoBlock) or keys not strictly ascending are broken invariants (HS_CHECK).
void sparse_attention(const SparseAttentionItem* items, int num_items);

// "sparse_gather_avx512", "sparse_gather_avx2" or "sparse_gather_scalar": the variant the
// current ISA (kernels::active_isa()) selects.
const char* sparse_attention_kernel_name();

// The oracle for tests: materialises every score and the softmax in double precision.
void sparse_attention_reference(const SparseAttentionItem& item);

}  // namespace hotswap
