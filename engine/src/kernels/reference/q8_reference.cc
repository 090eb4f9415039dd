#include <vector>

#include "kernels/q8.h"

namespace hotswap::kernels {

// x is quantised as linear_q8 does it; every product q_w·d_w · q_x·d_x is exact in double and
// the sums are double, so this differs from linear_q8 by its float32 sums only.
void linear_q8_reference(const float* x, int64_t m, const Q8Matrix& w, const float* bias, float* y) {
  const int64_t blocks = q8_blocks(w.k);
  std::vector<int8_t> xq(static_cast<size_t>(blocks * kQ8Block));
  std::vector<float> xd(static_cast<size_t>(blocks));
  std::vector<int32_t> xsum(static_cast<size_t>(blocks));
  for (int64_t i = 0; i < m; ++i) {
    quantize_row_q8(x + i * w.k, w.k, xq.data(), xd.data(), xsum.data());
    for (int64_t j = 0; j < w.n; ++j) {
      double acc = 0;
      for (int64_t c = 0; c < w.k; ++c)
        acc += static_cast<double>(q8_weight(w, j, c)) *
               (static_cast<double>(xq[static_cast<size_t>(c)]) * xd[static_cast<size_t>(c / kQ8Block)]);
      y[i * w.n + j] = static_cast<float>(acc + (bias ? bias[j] : 0.0));
    }
  }
}

}  // namespace hotswap::kernels
