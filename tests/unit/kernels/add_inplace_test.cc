#include "kernels/add_inplace.h"

#include <gtest/gtest.h>

#include <vector>

#include "isa_params.h"

namespace hotswap::kernels {
namespace {

class AddInplaceTest : public ForcedIsaTest {};

TEST_P(AddInplaceTest, MatchesReferenceExactly) {
  for (int64_t n : {1, 5, 8, 16, 17, 4095, 4097, 300001}) {
    std::vector<float> x(static_cast<size_t>(n)), y(x.size());
    for (int64_t i = 0; i < n; ++i) {
      x[static_cast<size_t>(i)] = static_cast<float>(i % 13) * 0.25f - 1.0f;
      y[static_cast<size_t>(i)] = static_cast<float>(i % 7) * 0.5f;
    }
    std::vector<float> ref = y;
    add_inplace(y.data(), x.data(), n);
    add_inplace_reference(ref.data(), x.data(), n);
    EXPECT_EQ(y, ref) << "n " << n;
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, AddInplaceTest, testing::ValuesIn(isas_on_this_cpu()), isa_param_name);

}  // namespace
}  // namespace hotswap::kernels
