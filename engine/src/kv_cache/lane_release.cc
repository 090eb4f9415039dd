// Per-KV-head release (KvCacheManager::release_invisible with kept lanes): a page that only
// the dense heads' lanes still need is split, so a DuoAttention deployment of `mixed` holds
// about (kept lanes / all lanes) of the pages outside the streaming window instead of all.
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/check.h"
#include "kv_cache/kv_cache_manager.h"

namespace hotswap {

int KvCacheManager::release_invisible(BlockTable& table, const StreamingRule& rule,
                                      std::span<const uint8_t> kept_lanes, int next_query_pos) {
  int num_kept = 0;
  for (uint8_t k : kept_lanes) num_kept += k != 0;
  if (num_kept == 0) return release_invisible(table, rule, next_query_pos);
  HS_CHECK(static_cast<int>(kept_lanes.size()) == layout().lanes_per_block())
      << "kept lanes: " << kept_lanes.size() << " for " << layout().lanes_per_block() << " lanes";
  if (!layout().head_pages_fit()) return 0;  // head page numbers would overflow: keep everything
  const int bs = block_size();
  const int first = (rule.sink_end + bs - 1) / bs;        // first page wholly after the sinks
  const int end = rule.local_start(next_query_pos) / bs;  // pages before it end <= local_start
  const int stop = std::min(end, static_cast<int>(table.blocks.size()));
  int released = 0;
  int first_shared = -1;  // the first page left whole because another table shares it
  for (int i = std::max(first, table.release_cursor); i < stop; ++i) {
    const int32_t b = table.blocks[i];
    if (b == kNoBlock) continue;
    if (pool_.ref_count(b) > 1) {
      if (first_shared < 0) first_shared = i;
      continue;
    }
    split_block(table, i, kept_lanes, num_kept);
    ++released;
  }
  // Shared pages are looked at again at the next call: they may be ours alone by then.
  table.release_cursor = first_shared >= 0 ? first_shared : std::max(table.release_cursor, stop);
  return released;
}

void KvCacheManager::split_block(BlockTable& table, int i, std::span<const uint8_t> kept_lanes, int num_kept) {
  const int lanes = layout().lanes_per_block();
  const size_t need = static_cast<size_t>(i + 1) * lanes;
  if (table.lane_pages.size() < need) table.lane_pages.resize(need, kNoBlock);
  const std::span<int32_t> pages(table.lane_pages.data() + static_cast<size_t>(i) * lanes, static_cast<size_t>(lanes));
  const int32_t b = table.blocks[i];
  if (heads_.num_free() < num_kept && pool_.is_cached(b) && pool_.num_free() > 0) {
    // A published page stays findable by later prompts when its rows stay put: carve a fresh
    // block for the kept lanes instead (as many blocks held either way).
    std::vector<uint8_t> none(static_cast<size_t>(lanes), 0);
    std::vector<int32_t> unused(static_cast<size_t>(lanes));
    heads_.carve(*pool_.allocate(), none, unused);
  }
  if (heads_.num_free() >= num_kept) {
    // Fill the holes of carved blocks; the whole block goes back (a published one stays
    // findable by its prefix while it is free, its rows untouched).
    for (int lane = 0; lane < lanes; ++lane) {
      if (!kept_lanes[lane]) continue;
      const int32_t g = heads_.take();
      copy_head_page(heads_.page_of(b, lane), g);
      pages[lane] = g;
    }
    pool_.release(b);
  } else {
    // No room: the block becomes a carved one, its kept lanes staying where they are and its
    // other lanes free head pages for the next splits (which overwrite them: unpublish).
    pool_.forget_cached(b);
    heads_.carve(b, kept_lanes, pages);
  }
  table.blocks[i] = kNoBlock;
}

void KvCacheManager::copy_head_page(int32_t from, int32_t to) {
  const KvLayout& l = layout();
  const size_t n = l.head_elems() * kv_dtype_size(l.dtype);  // bytes
  for (void* base : {storage_.key_data(0), storage_.value_data(0)}) {
    auto* bytes = static_cast<unsigned char*>(base);
    std::memcpy(bytes + static_cast<size_t>(to) * n, bytes + static_cast<size_t>(from) * n, n);
  }
}

}  // namespace hotswap
