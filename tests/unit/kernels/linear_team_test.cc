// linear_team() inside a caller's parallel region gives bitwise linear()'s y (issue 16: the
// model's layer regions rely on it), for every ISA, weight dtype and precision, on shapes
// that split over threads and shapes below the parallel threshold.
#include "kernels/linear_team.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "isa_params.h"
#include "kernels/linear.h"
#include "kernels/team.h"

namespace hotswap::kernels {
namespace {

class LinearTeamTest : public ForcedIsaTest {
 protected:
  void TearDown() override {
    ForcedIsaTest::TearDown();
    set_linear_precision(LinearPrecision::kF32);
  }
};

std::vector<uint8_t> weight_bytes(DType dtype, int64_t n, int64_t k, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<uint8_t> bytes(static_cast<size_t>(n * k) * dtype_size(dtype));
  for (int64_t i = 0; i < n * k; ++i) {
    const float v = dist(rng);
    if (dtype == DType::kF32) {
      std::memcpy(bytes.data() + i * 4, &v, 4);
    } else {
      const uint16_t h = dtype == DType::kBF16 ? f32_to_bf16(v) : f32_to_f16(v);
      std::memcpy(bytes.data() + i * 2, &h, 2);
    }
  }
  return bytes;
}

TEST_P(LinearTeamTest, BitwiseEqualToLinear) {
  struct Shape {
    int64_t m, n, k;
  };
  // Below and above kMinParallelMacs; n not a multiple of the 8-column unit; odd k.
  const Shape shapes[] = {{1, 576, 576}, {1, 192, 576}, {1, 1536, 576}, {1, 576, 1536}, {3, 1001, 333},
                          {7, 260, 300},  {1, 17, 33},   {2, 100, 64},   {5, 9, 515}};
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (LinearPrecision precision : {LinearPrecision::kF32, LinearPrecision::kBf16Dot}) {
    set_linear_precision(precision);
    for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
      for (const Shape& s : shapes) {
        std::vector<uint8_t> bytes = weight_bytes(dtype, s.n, s.k, rng);
        const TensorView w{dtype, {s.n, s.k}, bytes.data()};
        std::vector<float> x(static_cast<size_t>(s.m * s.k)), bias(static_cast<size_t>(s.n));
        for (float& v : x) v = dist(rng);
        for (float& v : bias) v = dist(rng);
        ASSERT_TRUE(linear_team_applies(s.m, w));
        std::vector<float> expected(static_cast<size_t>(s.m * s.n)), y(expected.size(), -1.0f);
        linear(x.data(), s.m, w, bias.data(), expected.data());
        team_run(team_threads(), [&](int index, int count) {
          linear_team(x.data(), s.m, w, bias.data(), y.data(), index, count);
        });
        EXPECT_EQ(std::memcmp(y.data(), expected.data(), y.size() * sizeof(float)), 0)
            << "m " << s.m << " n " << s.n << " k " << s.k << " " << dtype_name(dtype)
            << (precision == LinearPrecision::kBf16Dot ? " bf16 products" : " f32");
      }
    }
  }
}

TEST(LinearTeam, AppliesOnlyToDecodeSizedSteps) {
  std::vector<float> data(64 * 64);
  const TensorView w{DType::kF32, {64, 64}, data.data()};
  EXPECT_TRUE(linear_team_applies(1, w));
  EXPECT_TRUE(linear_team_applies(kBf16DotMinRows - 1, w));
  EXPECT_FALSE(linear_team_applies(kBf16DotMinRows, w));
  EXPECT_FALSE(linear_team_applies(0, w));
  const TensorView empty_k{DType::kF32, {64, 0}, data.data()};
  EXPECT_FALSE(linear_team_applies(1, empty_k));
}

INSTANTIATE_TEST_SUITE_P(Isas, LinearTeamTest, testing::ValuesIn(isas_on_this_cpu()), isa_param_name);

}  // namespace
}  // namespace hotswap::kernels
