#include "kv_cache/block_pool.h"

#include "core/check.h"

namespace hotswap {

BlockPool::BlockPool(int64_t num_blocks) : ref_counts_(static_cast<size_t>(num_blocks), 0) {
  free_.reserve(static_cast<size_t>(num_blocks));
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

std::optional<int32_t> BlockPool::allocate() {
  if (free_.empty()) return std::nullopt;
  const int32_t b = free_.back();
  free_.pop_back();
  ref_counts_[b] = 1;
  return b;
}

void BlockPool::retain(int32_t block) {
  HS_CHECK(ref_counts_[block] > 0) << "retain of free block " << block;
  ++ref_counts_[block];
}

void BlockPool::release(int32_t block) {
  HS_CHECK(ref_counts_[block] > 0) << "double free of block " << block;
  if (--ref_counts_[block] == 0) free_.push_back(block);
}

}  // namespace hotswap
