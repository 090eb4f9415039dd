// Physical KV blocks: a free list and reference counts. Engine thread only; no locks.
// Shared prefix blocks have ref_count > 1; a block returns to the free list when its count
// drops to zero.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace hotswap {

class BlockPool {
 public:
  explicit BlockPool(int64_t num_blocks);

  std::optional<int32_t> allocate();
  void retain(int32_t block);
  void release(int32_t block);

  int64_t num_blocks() const { return static_cast<int64_t>(ref_counts_.size()); }
  int64_t num_free() const { return static_cast<int64_t>(free_.size()); }
  int64_t num_used() const { return num_blocks() - num_free(); }
  int ref_count(int32_t block) const { return ref_counts_[block]; }

 private:
  std::vector<int32_t> free_;  // LIFO: recently freed blocks are reused first (warm cache)
  std::vector<int> ref_counts_;
};

}  // namespace hotswap
