// One sequence's logical -> physical block map. Logical block i holds positions
// [i*block_size, (i+1)*block_size). Append-only; an entry becomes kNoBlock when its block
// was released (streaming) and no query will read it again.
#pragma once

#include <cstdint>
#include <vector>

#include "kv_cache/kv_layout.h"

namespace hotswap {

struct BlockTable {
  std::vector<int32_t> blocks;
  int num_tokens = 0;  // positions written so far

  int num_held() const {
    int n = 0;
    for (int32_t b : blocks) n += b != kNoBlock;
    return n;
  }
};

}  // namespace hotswap
