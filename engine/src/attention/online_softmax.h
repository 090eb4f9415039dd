// Internal to attention/: the online-softmax state the CPU attention kernels' item kernels
// leave per query head (and branch), and its exact merge across the splits of one query's
// keys. Used by the paged kernel (paged_attention_kernel.h, which NSA's branches also run
// on) and the sparse kernel (masked/sparse_attention_kernel.h).
//
// One state is [m, l, acc[0..head_dim)]: the running max of the scores, the sum of
// exp(score - m) and the sum of exp(score - m) * v over the keys seen. A state that saw no
// key has m = -inf, l = 0, acc = 0.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace hotswap::attention_detail {

// Floats per state.
inline size_t state_stride(int head_dim) { return static_cast<size_t>(head_dim) + 2; }

// dst <- the state of the union of the keys dst and src saw (one head, one branch).
inline void merge_state(float* dst, const float* src, int head_dim) {
  if (src[0] == -INFINITY) return;
  if (dst[0] == -INFINITY) {
    std::copy(src, src + head_dim + 2, dst);
    return;
  }
  const float m = std::max(dst[0], src[0]);
  const float cd = std::exp(dst[0] - m);
  const float cs = std::exp(src[0] - m);
  dst[0] = m;
  dst[1] = dst[1] * cd + src[1] * cs;
  for (int x = 0; x < head_dim; ++x) dst[2 + x] = dst[2 + x] * cd + src[2 + x] * cs;
}

}  // namespace hotswap::attention_detail
