#include "kv_cache/head_page_pool.h"

#include <limits>

#include "core/check.h"

namespace hotswap {

HeadPagePool::HeadPagePool(BlockPool& blocks, const KvLayout& layout)
    : blocks_(blocks), num_blocks_(layout.num_blocks), num_kv_heads_(layout.num_kv_heads),
      lanes_(layout.lanes_per_block()) {}

void HeadPagePool::index(int32_t block, const Carved& c, bool add) {
  if (c.free_lanes.empty()) return;
  if (add) with_room_.emplace(c.free_lanes.size(), block);
  else with_room_.erase({c.free_lanes.size(), block});
}

void HeadPagePool::carve(int32_t block, std::span<const uint8_t> keep, std::span<int32_t> pages) {
  HS_CHECK(static_cast<int>(keep.size()) == lanes_ && static_cast<int>(pages.size()) == lanes_) << "carve: lane count";
  HS_CHECK(blocks_.ref_count(block) == 1 && !carved_.contains(block)) << "carving shared or carved block " << block;
  if (refs_.empty()) refs_.assign(static_cast<size_t>(num_blocks_ * lanes_), 0);
  Carved c;
  for (int lane = 0; lane < lanes_; ++lane) {
    const int32_t page = page_of(block, lane);
    if (keep[lane]) {
      refs_[static_cast<size_t>(page)] = 1;
      pages[lane] = page;
      ++c.used;
    } else {
      c.free_lanes.push_back(lane);
      pages[lane] = kNoBlock;
    }
  }
  num_free_ += static_cast<int64_t>(c.free_lanes.size());
  index(block, c, true);
  carved_.emplace(block, std::move(c));
}

int32_t HeadPagePool::take() {
  HS_CHECK(!with_room_.empty()) << "no free head page";
  const int32_t block = with_room_.begin()->second;
  Carved& c = carved_.at(block);
  index(block, c, false);
  const int lane = c.free_lanes.back();
  c.free_lanes.pop_back();
  ++c.used;
  --num_free_;
  index(block, c, true);
  const int32_t page = page_of(block, lane);
  refs_[static_cast<size_t>(page)] = 1;
  return page;
}

void HeadPagePool::retain(int32_t page) {
  uint16_t& r = refs_[static_cast<size_t>(page)];
  HS_CHECK(r > 0 && r < std::numeric_limits<uint16_t>::max()) << "retain of head page " << page << " with " << r;
  ++r;
}

void HeadPagePool::release(int32_t page) {
  uint16_t& r = refs_[static_cast<size_t>(page)];
  HS_CHECK(r > 0) << "double free of head page " << page;
  if (--r > 0) return;
  const int32_t block = block_of(page);
  Carved& c = carved_.at(block);
  index(block, c, false);
  c.free_lanes.push_back(lane_of(page));
  ++num_free_;
  if (--c.used > 0) {
    index(block, c, true);
    return;
  }
  // Nothing of the block is in use: it goes back whole.
  num_free_ -= static_cast<int64_t>(c.free_lanes.size());
  carved_.erase(block);
  blocks_.release(block);
}

}  // namespace hotswap
