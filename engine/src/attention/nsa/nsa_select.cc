#include "attention/nsa/nsa_select.h"

#include <algorithm>

namespace hotswap::nsa_detail {

void add_block_importance(const float* p, int64_t num_compressed, const NsaConfig& c, int64_t num_selection_blocks,
                          float* importance) {
  // The compressed blocks overlapping selection block b are a contiguous run of j: j*s < (b+1)*l'
  // and j*s + l > b*l', i.e. j in [b*r - floor((l-1)/s), (b+1)*r) with r = l'/s (l' is a
  // multiple of s). Each b sums its run in increasing j, the order a per-j scatter would use,
  // without a division per block.
  const int64_t r = c.selection_block_size / c.compress_stride;
  const int64_t back = (c.compress_block_size - 1) / c.compress_stride;
  for (int64_t b = 0; b < num_selection_blocks; ++b) {
    const int64_t lo = std::max<int64_t>(0, b * r - back);
    const int64_t hi = std::min(num_compressed, (b + 1) * r);
    float acc = importance[b];
    for (int64_t j = lo; j < hi; ++j) acc += p[j];
    importance[b] = acc;
  }
}

void group_importance(const float* p, int group, int64_t p_stride, int64_t num_compressed, const NsaConfig& c,
                      int64_t num_selection_blocks, float* head_scratch, float* out) {
  std::fill_n(out, num_selection_blocks, 0.0f);
  for (int a = 0; a < group; ++a) {
    std::fill_n(head_scratch, num_selection_blocks, 0.0f);
    add_block_importance(p + a * p_stride, num_compressed, c, num_selection_blocks, head_scratch);
    for (int64_t b = 0; b < num_selection_blocks; ++b) out[b] += head_scratch[b];
  }
}

int select_blocks(const float* importance, int64_t t, const NsaConfig& c, int32_t* scratch, int32_t* out) {
  const int64_t current = t / c.selection_block_size;
  const int64_t num_blocks = current + 1;
  const int n = c.num_selected_blocks;
  if (num_blocks <= n) {
    for (int32_t b = 0; b < num_blocks; ++b) out[b] = b;
    return static_cast<int>(num_blocks);
  }
  // Forced blocks first (the paper's "1 initial + 2 local"), each once.
  int count = 0;
  auto take = [&](int64_t b) {
    if (count >= n || b < 0) return;
    for (int k = 0; k < count; ++k) {
      if (out[k] == b) return;
    }
    out[count++] = static_cast<int32_t>(b);
  };
  take(0);
  take(current);
  take(current - 1);
  if (count < n) {
    int32_t num_candidates = 0;
    for (int32_t b = 0; b < num_blocks; ++b) {
      if (std::find(out, out + count, b) == out + count) scratch[num_candidates++] = b;
    }
    const int want = n - count;
    std::partial_sort(scratch, scratch + want, scratch + num_candidates, [importance](int32_t x, int32_t y) {
      return importance[x] > importance[y] || (importance[x] == importance[y] && x < y);
    });
    std::copy_n(scratch, want, out + count);
    count = n;
  }
  std::sort(out, out + count);
  return count;
}

}  // namespace hotswap::nsa_detail
