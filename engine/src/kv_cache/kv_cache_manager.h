// The paged KV cache: the storage, the block pool, and every change to a sequence's block
// table. Engine thread only; not thread-safe, no locks. Only this class allocates, shares,
// copies or frees blocks; the bytes are written elsewhere: Model::forward stores each layer's
// new K (RoPE applied) and V straight into storage(), through the sequence's block table at
// the positions prepare_write() reserved, before that layer attends, and the backends read
// them through a PagedKvView. view()/write_kv() do the same for tests.
//
// A sequence's life: match_prefix (reuse cached prompt blocks) -> per step:
// prepare_write (reserve the positions the step writes) -> forward -> publish_full_blocks
// (offer finished blocks to later prompts) -> release_invisible (streaming: drop pages no
// future query can see; per KV head when only some heads stream) ... -> free. fork() shares a
// table's blocks with a new table, and copy-on-write keeps the two apart when either writes
// into a shared block; no engine path forks (a request's n > 1 choices are separate sequences
// that share their prompt through the prefix cache), the kv_cache tests do.
//
// When the pool is full nothing is evicted from a running sequence: prepare_write reports
// ResourceExhausted and changes nothing, and the scheduler decides (wait or preempt with
// free + recompute). blocks_needed/can_allocate/peak_blocks are the queries it plans with.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "kv_cache/paged_kv_view.h"
#include "engine/status.h"
#include "kv_cache/block_pool.h"
#include "kv_cache/block_table.h"
#include "kv_cache/head_page_pool.h"
#include "kv_cache/kv_layout.h"
#include "kv_cache/kv_storage.h"
#include "kv_cache/streaming_rule.h"

namespace hotswap {

struct KvCacheStats {
  int64_t num_blocks = 0;
  int64_t num_used = 0;         // held by at least one sequence
  int64_t num_free = 0;         // allocatable, including num_cached_free
  int64_t num_cached_free = 0;  // free but still holding a published prefix
  int64_t num_cached = 0;       // blocks findable by prefix (in use or free)
  int64_t num_carved = 0;       // in use, split into head pages (per-KV-head release; in num_used)
  int64_t num_head_pages_used = 0;
  int block_size = 0;
  size_t bytes_per_block = 0;   // K and V, all layers, at the cache's dtype
  KvDtype dtype = KvDtype::kF32;
};

class KvCacheManager {
 public:
  // `layout.num_blocks` blocks are allocated up front (zeroed).
  explicit KvCacheManager(const KvLayout& layout);

  // Layout for a capacity in bytes (if capacity_bytes > 0) or else tokens (rounded up to
  // whole blocks). Throws LoadError when the capacity holds no block or a dimension is < 1.
  // Bytes per block follow `dtype` (bf16: half of f32, so a byte capacity holds twice the
  // tokens; q8: 9/32 of f32). q8 needs head_dim % 32 == 0 (LoadError naming the head dim).
  static KvLayout plan_layout(int num_layers, int num_kv_heads, int head_dim, int block_size,
                              int64_t capacity_tokens, int64_t capacity_bytes, KvDtype dtype = KvDtype::kF32);

  const KvLayout& layout() const { return storage_.layout(); }
  int block_size() const { return storage_.layout().block_size; }
  KvStorage& storage() { return storage_; }
  const KvStorage& storage() const { return storage_; }

  // ---- Reading and writing KV (the forward pass) ----
  // One layer of the cache through the table; valid until the table changes.
  PagedKvView view(const BlockTable& table, int layer) const;
  // Stores the K and V of one position, [num_kv_heads, head_dim] each, RoPE applied to k
  // (rounded to nearest even for a bf16 cache, as Model::forward writes them).
  // The position must have been reserved by prepare_write.
  void write_kv(const BlockTable& table, int layer, int pos, const float* k, const float* v);
  // The same for `count` consecutive positions: k, v are [count, num_kv_heads, head_dim].
  void write_kv(const BlockTable& table, int layer, int first_pos, int count, const float* k, const float* v);

  // ---- Allocation ----
  // Blocks prepare_write(table, first_pos, count) would take from the pool: new pages plus
  // copies of shared blocks the write lands in.
  int64_t blocks_needed(const BlockTable& table, int first_pos, int count) const;
  bool can_allocate(int64_t num_blocks) const { return num_blocks <= pool_.num_free(); }
  // Makes positions [first_pos, first_pos + count) writable: allocates missing pages and
  // copies (copy-on-write) any block in the range that another table shares. first_pos must
  // be <= table.num_tokens (no holes). On success num_tokens >= first_pos + count. On
  // ResourceExhausted nothing changed.
  Status prepare_write(BlockTable& table, int first_pos, int count);
  // Returns every block of the table (its state blocks and head pages too) to the pool and
  // resets the table.
  void free(BlockTable& table);
  // Makes the table's state blocks cover `bytes` of attention state (whole blocks of
  // bytes_per_block), taking more from the pool when needed; never gives any back (state
  // grows with the sequence). On ResourceExhausted nothing changed.
  Status hold_state_bytes(BlockTable& table, int64_t bytes);
  int64_t blocks_for_bytes(int64_t bytes) const {
    const auto per_block = static_cast<int64_t>(layout().bytes_per_block_all_layers());
    return (bytes + per_block - 1) / per_block;
  }
  // `child` (empty) shares all of `parent`'s KV blocks and head pages (not its state blocks: the
  // state is the parent's). Either side's next write into a shared
  // partially filled block copies it first. Unused by the engine (see the top of this file).
  void fork(const BlockTable& parent, BlockTable& child);

  // ---- Streaming release ----
  // Releases the pages that lie wholly in [rule.sink_end, rule.local_start(next_query_pos)):
  // no query at next_query_pos or later can see them. Returns how many were released.
  // Call after a step with next_query_pos = table.num_tokens.
  int release_invisible(BlockTable& table, const StreamingRule& rule, int next_query_pos);
  // Per KV head (DuoAttention): the lanes (layer * num_kv_heads + kv_head) with
  // kept_lanes[lane] != 0 keep every position (dense heads read them); the others give up the
  // same pages as above. A page wholly out of the window is split: its kept lanes go to head
  // pages (copied into free head pages of carved blocks when there are enough, else the block
  // itself is carved in place, no copy) and the rest returns to the pool. A block another
  // table shares is left whole until it is ours alone (splitting it would hold more, not less).
  // Empty kept_lanes, or none kept: the whole-page release above. Returns whole blocks given
  // up (carved in place counts as given up). Needs layout().head_pages_fit(), else keeps all.
  int release_invisible(BlockTable& table, const StreamingRule& rule, std::span<const uint8_t> kept_lanes,
                        int next_query_pos);
  // A sequence's release (SequenceAttention::release_rule and kept_lanes; both, so a dense
  // head's lane is never released by a caller that forgot them): no rule releases nothing.
  int release_invisible(BlockTable& table, const std::optional<StreamingRule>& rule,
                        std::span<const uint8_t> kept_lanes, int next_query_pos) {
    return rule ? release_invisible(table, *rule, kept_lanes, next_query_pos) : 0;
  }

  // ---- Prefix sharing ----
  // For a new (empty) table: attaches the longest run of cached full blocks that begins
  // `tokens` under `cache_namespace` and returns the number of tokens they hold (a multiple
  // of block_size, always < tokens.size() so the last prompt token is computed for its
  // logits). table.num_tokens is set to that; the caller starts computing there.
  int match_prefix(BlockTable& table, std::string_view cache_namespace, std::span<const int32_t> tokens);
  // After the step that computed them: publishes every full block of positions
  // [0, min(table.num_tokens, tokens.size())) that is not published yet, so later prompts
  // with the same prefix (same namespace) share it. `tokens` are the sequence's token ids
  // by position (prompt then generated). Returns how many blocks were newly published.
  int publish_full_blocks(BlockTable& table, std::string_view cache_namespace, std::span<const int32_t> tokens);

  // ---- Accounting ----
  KvCacheStats stats() const;
  const HeadPagePool& head_pages() const { return heads_; }
  int64_t num_blocks() const { return pool_.num_blocks(); }
  int64_t num_free_blocks() const { return pool_.num_free(); }
  int64_t num_used_blocks() const { return pool_.num_used(); }
  int ref_count(int32_t block) const { return pool_.ref_count(block); }
  int64_t blocks_for_positions(int64_t num_positions) const {
    return (num_positions + block_size() - 1) / block_size();
  }
  // The most blocks one sequence holds while growing to num_positions positions, computed
  // in steps of at most max_step_tokens (prefill chunk) with `rule` releasing pages (or no
  // rule: all kept); with per-KV-head release, num_kept_lanes of the lanes_per_block lanes
  // keep every position (their head pages fill carved blocks). If this exceeds num_blocks()
  // the request can never run.
  int64_t peak_blocks(const std::optional<StreamingRule>& rule, int64_t num_positions, int64_t max_step_tokens,
                      int num_kept_lanes = 0) const;

 private:
  void copy_block(int32_t from, int32_t to);
  // Per-KV-head release of logical block i (whole, ours alone): see release_invisible.
  void split_block(BlockTable& table, int i, std::span<const uint8_t> kept_lanes, int num_kept);
  void copy_head_page(int32_t from, int32_t to);

  KvStorage storage_;
  BlockPool pool_;
  HeadPagePool heads_;
};

}  // namespace hotswap
