#include <cmath>

#include "core/check.h"
#include "kernels/rms_norm.h"

namespace hotswap::kernels {

void rms_norm_reference(const float* x, int64_t rows, int64_t dim, const TensorView& weight, float eps,
                        float* y) {
  HS_CHECK(weight.numel() == dim) << "rms_norm weight " << shape_string(weight.shape) << " for dim " << dim;
  for (int64_t r = 0; r < rows; ++r) {
    double sum_sq = 0;
    for (int64_t c = 0; c < dim; ++c) sum_sq += double{x[r * dim + c]} * x[r * dim + c];
    const float inv_rms = 1.0f / std::sqrt(static_cast<float>(sum_sq / static_cast<double>(dim)) + eps);
    for (int64_t c = 0; c < dim; ++c) y[r * dim + c] = (x[r * dim + c] * inv_rms) * weight.at(c);
  }
}

}  // namespace hotswap::kernels
