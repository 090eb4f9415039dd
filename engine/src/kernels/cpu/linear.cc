// Interim dispatch: the scalar path until the vectorised kernels land (issue 7).
#include "kernels/linear.h"

namespace hotswap::kernels {

void linear(const float* x, int64_t m, const TensorView& w, const float* bias, float* y) {
  linear_reference(x, m, w, bias, y);
}

const char* linear_isa() { return "scalar"; }

}  // namespace hotswap::kernels
