#include "kv_cache/block_pool.h"

#include "core/check.h"

namespace hotswap {

BlockPool::BlockPool(int64_t num_blocks) : meta_(static_cast<size_t>(num_blocks)) {
  HS_CHECK(num_blocks >= 0 && num_blocks <= INT32_MAX) << "block pool of " << num_blocks << " blocks";
  free_plain_.reserve(static_cast<size_t>(num_blocks));
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_plain_.push_back(static_cast<int32_t>(b));
}

std::optional<int32_t> BlockPool::allocate() {
  // Never-cached blocks first: a cached free block may still save a later prompt its
  // prefill, so it is evicted only when nothing else is left, oldest first.
  int32_t b = -1;
  if (!free_plain_.empty()) {
    b = free_plain_.back();
    free_plain_.pop_back();
  } else if (lru_head_ >= 0) {
    b = lru_head_;
    lru_unlink(b);
    index_.erase(meta_[b].key);
    meta_[b].cached = false;
  } else {
    return std::nullopt;
  }
  HS_CHECK(meta_[b].ref_count == 0) << "allocating block " << b << " with ref_count " << meta_[b].ref_count;
  meta_[b].ref_count = 1;
  return b;
}

void BlockPool::retain(int32_t block) {
  HS_CHECK(meta_[block].ref_count > 0) << "retain of free block " << block;
  ++meta_[block].ref_count;
}

void BlockPool::release(int32_t block) {
  Meta& m = meta_[block];
  HS_CHECK(m.ref_count > 0) << "double free of block " << block;
  if (--m.ref_count > 0) return;
  // A published block stays findable while free (match_prefix can revive it); the LRU
  // order decides which such block allocate() gives up first.
  if (m.cached) {
    lru_push_back(block);
  } else {
    free_plain_.push_back(block);
  }
}

std::optional<int32_t> BlockPool::find_cached(const PrefixKey& key) const {
  const auto it = index_.find(key);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

void BlockPool::acquire_cached(int32_t block) {
  Meta& m = meta_[block];
  HS_CHECK(m.cached) << "acquire_cached of uncached block " << block;
  if (m.ref_count == 0) lru_unlink(block);
  ++m.ref_count;
}

bool BlockPool::register_cached(int32_t block, const PrefixKey& key) {
  Meta& m = meta_[block];
  HS_CHECK(m.ref_count > 0) << "publishing free block " << block;
  if (m.cached || index_.contains(key)) return false;
  m.cached = true;
  m.key = key;
  index_.emplace(key, block);
  return true;
}

void BlockPool::forget_cached(int32_t block) {
  Meta& m = meta_[block];
  if (!m.cached) return;
  index_.erase(m.key);
  m.cached = false;
  if (m.ref_count == 0) {
    lru_unlink(block);
    free_plain_.push_back(block);
  }
}

void BlockPool::lru_push_back(int32_t block) {
  Meta& m = meta_[block];
  m.lru_prev = lru_tail_;
  m.lru_next = -1;
  if (lru_tail_ >= 0) {
    meta_[lru_tail_].lru_next = block;
  } else {
    lru_head_ = block;
  }
  lru_tail_ = block;
  ++num_cached_free_;
}

void BlockPool::lru_unlink(int32_t block) {
  Meta& m = meta_[block];
  if (m.lru_prev >= 0) {
    meta_[m.lru_prev].lru_next = m.lru_next;
  } else {
    lru_head_ = m.lru_next;
  }
  if (m.lru_next >= 0) {
    meta_[m.lru_next].lru_prev = m.lru_prev;
  } else {
    lru_tail_ = m.lru_prev;
  }
  m.lru_prev = m.lru_next = -1;
  --num_cached_free_;
}

}  // namespace hotswap
