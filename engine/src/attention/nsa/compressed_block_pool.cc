#include "attention/nsa/compressed_block_pool.h"

#include <algorithm>

#include "core/check.h"

namespace hotswap {

CompressedBlockPool::CompressedBlockPool(int num_kv_heads, int head_dim, int entries_per_page, int64_t max_pages)
    : num_kv_heads_(num_kv_heads), head_dim_(head_dim), entries_per_page_(entries_per_page), max_pages_(max_pages) {
  HS_CHECK(num_kv_heads > 0 && head_dim > 0 && entries_per_page > 0 && entries_per_page <= kMaxEntriesPerPage &&
           max_pages >= 0)
      << "CompressedBlockPool(" << num_kv_heads << ", " << head_dim << ", " << entries_per_page << ", " << max_pages
      << ")";
}

std::optional<int32_t> CompressedBlockPool::allocate() {
  if (free_.empty()) {
    const int64_t created = num_pages_created();
    if (max_pages_ > 0 && created >= max_pages_) return std::nullopt;
    HS_CHECK(created < INT32_MAX - kPagesPerChunk) << "compressed-block pool: too many pages";
    // A new chunk; its pages go on the free list highest first so the lowest is used next.
    chunks_.push_back(std::make_unique_for_overwrite<float[]>(kPagesPerChunk * 2 * half_floats()));
    const int64_t limit = max_pages_ > 0 ? std::min<int64_t>(created + kPagesPerChunk, max_pages_) : created + kPagesPerChunk;
    for (int64_t p = limit - 1; p >= created; --p) free_.push_back(static_cast<int32_t>(p));
    in_use_.resize(static_cast<size_t>(limit), 0);
  }
  const int32_t page = free_.back();
  free_.pop_back();
  in_use_[static_cast<size_t>(page)] = 1;
  ++num_in_use_;
  return page;
}

void CompressedBlockPool::release(int32_t page) {
  HS_CHECK(page >= 0 && page < num_pages_created() && in_use_[static_cast<size_t>(page)])
      << "releasing compressed-block page " << page << " that is not held";
  in_use_[static_cast<size_t>(page)] = 0;
  free_.push_back(page);
  --num_in_use_;
}

}  // namespace hotswap
