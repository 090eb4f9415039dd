// Owns the bytes of the paged KV cache. Knows nothing about sequences or block ownership;
// BlockPool decides which blocks are in use.
#pragma once

#include <vector>

#include "kv_cache/kv_layout.h"

namespace hotswap {

class KvStorage {
 public:
  explicit KvStorage(const KvLayout& layout);

  const KvLayout& layout() const { return layout_; }
  float* keys(int layer) { return k_[layer].data(); }
  float* values(int layer) { return v_[layer].data(); }
  const float* keys(int layer) const { return k_[layer].data(); }
  const float* values(int layer) const { return v_[layer].data(); }

 private:
  KvLayout layout_;
  std::vector<std::vector<float>> k_, v_;  // [layer] -> [num_blocks, Hkv, block_size, d]
};

}  // namespace hotswap
