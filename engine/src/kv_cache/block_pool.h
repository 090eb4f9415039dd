// Physical KV blocks: reference counts, the free lists and the prefix-cache index.
// Engine thread only; no locks. KvCacheManager is its only caller.
//
// A block is in use while its ref_count > 0 (shared prefix blocks have ref_count > 1). A
// freed block that holds a published prefix (a "cached" block) stays findable by its key
// until its slot is needed again: allocation takes never-cached free blocks first, then
// evicts cached free blocks least recently freed first. Both kinds count as free.
#pragma once

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "kv_cache/prefix_key.h"

namespace hotswap {

class BlockPool {
 public:
  explicit BlockPool(int64_t num_blocks);

  // A block with ref_count 1 and no prefix key, or nullopt when every block is in use.
  std::optional<int32_t> allocate();
  void retain(int32_t block);   // ref_count must be > 0
  void release(int32_t block);  // ref_count must be > 0

  // Prefix cache. A key names at most one block and a block has at most one key.
  std::optional<int32_t> find_cached(const PrefixKey& key) const;
  // Takes a reference to a cached block, reviving it from the free list if it was free.
  void acquire_cached(int32_t block);
  // Publishes `block` (in use) under `key`; false (and nothing changes) if the key already
  // names a block or the block already has a key.
  bool register_cached(int32_t block, const PrefixKey& key);
  // Forgets the block's key (its contents are about to change).
  void forget_cached(int32_t block);
  bool is_cached(int32_t block) const { return meta_[block].cached; }

  int64_t num_blocks() const { return static_cast<int64_t>(meta_.size()); }
  int64_t num_free() const { return static_cast<int64_t>(free_plain_.size()) + num_cached_free_; }
  int64_t num_used() const { return num_blocks() - num_free(); }
  int64_t num_cached_free() const { return num_cached_free_; }  // free, still findable
  int64_t num_cached() const { return static_cast<int64_t>(index_.size()); }
  int ref_count(int32_t block) const { return meta_[block].ref_count; }

 private:
  struct Meta {
    int ref_count = 0;
    bool cached = false;
    PrefixKey key;
    int32_t lru_prev = -1;  // neighbours in the cached-free list (ref_count == 0 && cached)
    int32_t lru_next = -1;
  };

  void lru_push_back(int32_t block);
  void lru_unlink(int32_t block);

  std::vector<Meta> meta_;
  std::vector<int32_t> free_plain_;  // LIFO: recently freed blocks are reused first (warm cache)
  int32_t lru_head_ = -1;            // oldest cached free block: evicted first
  int32_t lru_tail_ = -1;
  int64_t num_cached_free_ = 0;
  std::unordered_map<PrefixKey, int32_t, PrefixKeyHash> index_;
};

}  // namespace hotswap
