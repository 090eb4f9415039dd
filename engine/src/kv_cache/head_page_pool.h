// Head pages for per-KV-head release (DuoAttention deployment of `mixed`). A whole block holds
// every lane (layer, KV head) of block_size positions; when a sequence's streaming lanes no
// longer need a block's positions but its dense lanes do, the dense lanes' rows are kept in
// head pages (kv_layout.h numbering) and the rest of the block goes back. This pool carves
// whole blocks of the BlockPool into head pages: a carved block stays in use in the BlockPool
// (so hotswap_kv_blocks_used and admission see it) until none of its head pages is in use,
// then it goes back. Engine thread only; KvCacheManager is its only caller.
#pragma once

#include <cstdint>
#include <set>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kv_cache/block_pool.h"
#include "kv_cache/kv_layout.h"

namespace hotswap {

class HeadPagePool {
 public:
  HeadPagePool(BlockPool& blocks, const KvLayout& layout);

  int lanes_per_block() const { return lanes_; }
  int32_t page_of(int32_t block, int lane) const {
    const int layer = lane / num_kv_heads_, head = lane % num_kv_heads_;
    return static_cast<int32_t>((static_cast<int64_t>(layer) * num_blocks_ + block) * num_kv_heads_ + head);
  }
  int32_t block_of(int32_t page) const { return static_cast<int32_t>(page / num_kv_heads_ % num_blocks_); }
  int lane_of(int32_t page) const {
    return static_cast<int>(page / (static_cast<int64_t>(num_kv_heads_) * num_blocks_)) * num_kv_heads_ +
           static_cast<int>(page % num_kv_heads_);
  }

  // Takes over one reference to `block` (the caller's, ref_count 1): the lanes with keep[lane]
  // become head pages in use (one reference each, written to pages[lane]; kNoBlock for the
  // others), the other lanes free head pages. With no lane kept the caller must take() from
  // it at once (a carved block goes back only when its last page in use is released).
  void carve(int32_t block, std::span<const uint8_t> keep, std::span<int32_t> pages);
  // Free head pages in carved blocks.
  int64_t num_free() const { return num_free_; }
  // A free head page, now in use with one reference; num_free() must be > 0. Taken from the
  // carved block with the fewest free pages, so the emptiest ones can drain back to the pool.
  int32_t take();
  void retain(int32_t page);
  // Drops a reference; a carved block none of whose pages is in use goes back to the BlockPool.
  void release(int32_t page);

  int ref_count(int32_t page) const { return refs_.empty() ? 0 : refs_[static_cast<size_t>(page)]; }
  bool is_carved(int32_t block) const { return carved_.contains(block); }
  int64_t num_carved_blocks() const { return static_cast<int64_t>(carved_.size()); }
  int64_t num_used_pages() const { return num_carved_blocks() * lanes_ - num_free_; }

 private:
  struct Carved {
    int used = 0;
    std::vector<int> free_lanes;
  };
  void index(int32_t block, const Carved& c, bool add);

  BlockPool& blocks_;
  int64_t num_blocks_ = 0;
  int num_kv_heads_ = 0;
  int lanes_ = 0;
  std::vector<uint16_t> refs_;  // per head page; sized on the first carve
  std::unordered_map<int32_t, Carved> carved_;
  std::set<std::pair<size_t, int32_t>> with_room_;  // (free lanes, block) of carved blocks with room
  int64_t num_free_ = 0;
};

}  // namespace hotswap
