#include "kernels/rms_norm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "isa_params.h"

namespace hotswap::kernels {
namespace {

class RmsNormTest : public ForcedIsaTest {};

TEST_P(RmsNormTest, MatchesReferenceForEveryWeightDtype) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (int64_t dim : {1, 3, 15, 16, 17, 33, 100, 257, 4096}) {
      const int64_t rows = dim > 1000 ? 9 : 5;
      std::vector<float> x(static_cast<size_t>(rows * dim));
      for (float& v : x) v = dist(rng);
      // Weight at a 2-byte offset, as inside a safetensors file.
      std::vector<uint8_t> wbytes(static_cast<size_t>(dim) * 4 + 8);
      uint8_t* wdata = wbytes.data() + 2;
      for (int64_t c = 0; c < dim; ++c) {
        const float v = dist(rng);
        if (dtype == DType::kF32) {
          std::memcpy(wdata + c * 4, &v, 4);
        } else {
          const uint16_t h = dtype == DType::kBF16 ? f32_to_bf16(v) : f32_to_f16(v);
          std::memcpy(wdata + c * 2, &h, 2);
        }
      }
      const TensorView w{dtype, {dim}, wdata};
      std::vector<float> y(x.size()), ref(x.size());
      rms_norm(x.data(), rows, dim, w, 1e-6f, y.data());
      rms_norm_reference(x.data(), rows, dim, w, 1e-6f, ref.data());
      for (size_t i = 0; i < y.size(); ++i)
        ASSERT_NEAR(y[i], ref[i], 1e-5 * std::fabs(ref[i]) + 1e-30)
            << dtype_name(dtype) << " dim " << dim << " at " << i;
      // In place gives the same result.
      std::vector<float> inplace = x;
      rms_norm(inplace.data(), rows, dim, w, 1e-6f, inplace.data());
      EXPECT_EQ(inplace, y);
    }
  }
}

TEST_P(RmsNormTest, ZeroRowGivesZeroThanksToEps) {
  const float weight[4] = {1, 2, 3, 4};
  const TensorView w{DType::kF32, {4}, weight};
  const float x[4] = {};
  float y[4] = {1, 1, 1, 1};
  rms_norm(x, 1, 4, w, 1e-5f, y);
  for (float v : y) EXPECT_EQ(v, 0.0f);
}

INSTANTIATE_TEST_SUITE_P(AllIsas, RmsNormTest, testing::ValuesIn(isas_on_this_cpu()), isa_param_name);

}  // namespace
}  // namespace hotswap::kernels
