#include "kernels/silu_mul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "isa_params.h"

namespace hotswap::kernels {
namespace {

class SiluMulTest : public ForcedIsaTest {};

TEST_P(SiluMulTest, MatchesReferenceIncludingTailsAndLargeMagnitudes) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> dist(-12.0f, 12.0f);
  for (int64_t n : {1, 7, 8, 15, 16, 17, 100, 1023, 1025, 70000}) {
    std::vector<float> gate(static_cast<size_t>(n)), up(gate.size()), out(gate.size()), ref(gate.size());
    for (size_t i = 0; i < gate.size(); ++i) {
      gate[i] = dist(rng);
      up[i] = dist(rng);
    }
    // Saturating inputs: exp(-g) overflows or underflows.
    const float extremes[] = {-200.0f, -88.5f, -87.0f, 0.0f, -0.0f, 87.0f, 88.5f, 200.0f};
    for (size_t i = 0; i < gate.size() && i < std::size(extremes); ++i) gate[i] = extremes[i];
    silu_mul(gate.data(), up.data(), out.data(), n);
    silu_mul_reference(gate.data(), up.data(), ref.data(), n);
    for (size_t i = 0; i < out.size(); ++i)
      ASSERT_NEAR(out[i], ref[i], 1e-6 * std::fabs(gate[i] * up[i]) + 1e-35)
          << "n " << n << " g " << gate[i] << " u " << up[i];
  }
}

TEST_P(SiluMulTest, OutputMayAliasGate) {
  std::vector<float> gate = {-3, -1, 0, 0.5f, 2, 5, 9, -7, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  const std::vector<float> up(gate.size(), 1.5f);
  std::vector<float> ref(gate.size());
  silu_mul_reference(gate.data(), up.data(), ref.data(), static_cast<int64_t>(gate.size()));
  silu_mul(gate.data(), up.data(), gate.data(), static_cast<int64_t>(gate.size()));
  for (size_t i = 0; i < gate.size(); ++i) EXPECT_NEAR(gate[i], ref[i], 1e-6 * std::fabs(ref[i]) + 1e-35);
}

INSTANTIATE_TEST_SUITE_P(AllIsas, SiluMulTest, testing::ValuesIn(isas_on_this_cpu()), isa_param_name);

}  // namespace
}  // namespace hotswap::kernels
