// Test parameters: every kernel ISA this CPU can run, forced one at a time.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kernels/isa.h"

namespace hotswap::kernels {

inline std::vector<Isa> isas_on_this_cpu() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512})
    if (isa <= best_supported_isa()) isas.push_back(isa);
  return isas;
}

inline std::string isa_param_name(const testing::TestParamInfo<Isa>& info) {
  return isa_name(info.param);
}

// Forces GetParam()'s ISA for the test and restores the best one afterwards.
class ForcedIsaTest : public testing::TestWithParam<Isa> {
 protected:
  void SetUp() override { ASSERT_EQ(set_active_isa(GetParam()), GetParam()); }
  void TearDown() override { set_active_isa(best_supported_isa()); }
};

}  // namespace hotswap::kernels
