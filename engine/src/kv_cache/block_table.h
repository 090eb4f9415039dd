// One sequence's logical -> physical block map. Logical block i holds positions
// [i*block_size, (i+1)*block_size). Append-only; an entry becomes kNoBlock when its block
// was released (streaming) and no query will read it again. Owned by the sequence; only
// KvCacheManager changes it (engine thread).
#pragma once

#include <cstdint>
#include <vector>

#include "kv_cache/kv_layout.h"
#include "kv_cache/prefix_key.h"

namespace hotswap {

struct BlockTable {
  std::vector<int32_t> blocks;
  int num_tokens = 0;  // positions reserved by prepare_write (written by the step that follows)

  // Prefix-cache keys of the leading full blocks whose keys are known (matched or
  // published); prefix_keys[i] belongs to logical block i.
  std::vector<PrefixKey> prefix_keys;
  // Logical blocks below this index were already considered for streaming release.
  int release_cursor = 0;
  // Per-KV-head release (KvCacheManager::release_invisible with kept lanes): a logical block i
  // whose streaming lanes were given up has blocks[i] == kNoBlock and its kept lanes' rows in
  // head pages (kv_layout.h), lane_pages[i * lanes_per_block + layer * num_kv_heads + kv_head]
  // (kNoBlock: released lane). Sized to cover the split blocks only; kNoBlock where unsplit.
  // Each head page is counted in HeadPagePool; the table holds one reference per entry.
  std::vector<int32_t> lane_pages;
  // Blocks taken from the pool on behalf of the sequence's attention state (key summaries,
  // compressed caches kept in pools of their own): never read or written as KV, they make
  // that memory count against the KV cache's capacity (KvCacheManager::hold_state_bytes).
  std::vector<int32_t> state_blocks;

  bool empty() const { return blocks.empty() && num_tokens == 0 && state_blocks.empty() && lane_pages.empty(); }
  int num_held() const {
    int n = static_cast<int>(state_blocks.size());
    for (int32_t b : blocks) n += b != kNoBlock;
    return n;
  }
  // Head pages held (per-KV-head release); whole blocks are num_held().
  int num_lane_pages() const {
    int n = 0;
    for (int32_t g : lane_pages) n += g != kNoBlock;
    return n;
  }
};

}  // namespace hotswap
