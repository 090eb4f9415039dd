#include "core/check.h"
#include "kernels/linear.h"

namespace hotswap::kernels {

void linear_reference(const float* x, int64_t m, const TensorView& w, const float* bias, float* y) {
  HS_CHECK(w.shape.size() == 2) << "linear weight must be 2-D, got " << shape_string(w.shape);
  const int64_t n = w.shape[0], k = w.shape[1];
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      float acc = 0;
      for (int64_t c = 0; c < k; ++c) acc += x[i * k + c] * w.at(j * k + c);
      y[i * n + j] = acc + (bias ? bias[j] : 0.0f);
    }
  }
}

}  // namespace hotswap::kernels
