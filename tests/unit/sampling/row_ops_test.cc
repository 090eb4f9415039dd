#include "sampling/row_ops.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

namespace hotswap::sampling {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<float> random_row(size_t n, uint32_t seed, int num_distinct = 0) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> row(n);
  for (float& v : row) {
    v = normal(gen);
    // Coarse values force many exact ties.
    if (num_distinct > 0) v = std::round(v * static_cast<float>(num_distinct) / 12.0f);
  }
  return row;
}

// Oracle for select_top: a full stable sort by value descending.
std::vector<int32_t> reference_top(const std::vector<float>& row, int k) {
  std::vector<int32_t> idx(row.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return row[a] > row[b]; });
  idx.resize(static_cast<size_t>(k));
  return idx;
}

TEST(FastExp, MatchesStdExpToAFewUlp) {
  for (float x = -87.0f; x <= 88.0f; x += 0.01337f) {
    const double expected = std::exp(static_cast<double>(x));
    EXPECT_NEAR(fast_exp(x) / expected, 1.0, 3e-7) << "x=" << x;
  }
  EXPECT_EQ(fast_exp(0.0f), 1.0f);
}

TEST(FastExp, IsZeroForMaskedAndUnderflowingInputs) {
  EXPECT_EQ(fast_exp(-kInf), 0.0f);
  EXPECT_EQ(fast_exp(-87.5f), 0.0f);
  EXPECT_EQ(fast_exp(-1000.0f), 0.0f);
}

TEST(MaxValue, FindsMaximumOutsideFullBlocksAndIgnoresMaskedEntries) {
  std::vector<float> row(37, -kInf);
  row[3] = -5.0f;
  row[36] = -1.0f;  // in the scalar tail after two 16-lane blocks
  EXPECT_EQ(max_value(row), -1.0f);
  EXPECT_EQ(max_value(std::vector<float>(5, -kInf)), -kInf);
  EXPECT_EQ(max_value({}), -kInf);
}

TEST(ArgmaxFirst, ReturnsFirstIndexOfTiedMaximum) {
  std::vector<float> row(1000, 0.0f);
  row[700] = 4.0f;
  row[301] = 4.0f;
  row[999] = 4.0f;
  EXPECT_EQ(argmax_first(row), 301);
  EXPECT_EQ(argmax_first(std::vector<float>{1.0f, 3.0f, 2.0f, 3.0f}), 1);
  EXPECT_EQ(argmax_first(std::vector<float>{7.0f, 7.0f}), 0);
  EXPECT_EQ(argmax_first({}), -1);
}

TEST(SumExp, MatchesDoublePrecisionReference) {
  const std::vector<float> row = random_row(1003, 11);  // not a multiple of the block size
  const float m = max_value(row);
  double expected = 0;
  for (float v : row) expected += std::exp(static_cast<double>(v) - m);
  EXPECT_NEAR(sum_exp(row, m) / expected, 1.0, 1e-6);

  std::vector<double> blocks;
  block_sum_exp(row, m, blocks);
  ASSERT_EQ(blocks.size(), 4u);
  double expected_last = 0;
  for (size_t i = 3 * kSumBlock; i < row.size(); ++i) expected_last += std::exp(static_cast<double>(row[i]) - m);
  EXPECT_NEAR(blocks[3] / expected_last, 1.0, 1e-6);
  EXPECT_NEAR(std::accumulate(blocks.begin(), blocks.end(), 0.0) / expected, 1.0, 1e-6);
}

TEST(SelectTop, MatchesStableSortIncludingTiesOnBothPaths) {
  for (int num_distinct : {0, 20}) {
    const std::vector<float> row = random_row(5000, 3, num_distinct);
    for (int k : {0, 1, 2, 50, 1024, 1025, 3000, 5000}) {
      std::vector<int32_t> got;
      select_top(row, k, got);
      EXPECT_EQ(got, reference_top(row, k)) << "k=" << k << " distinct=" << num_distinct;
    }
  }
}

TEST(SelectTop, IncludesMaskedEntriesWhenKExceedsFiniteCount) {
  const std::vector<float> row = {-kInf, 2.0f, -kInf, 1.0f};
  std::vector<int32_t> got;
  select_top(row, 3, got);
  EXPECT_EQ(got, (std::vector<int32_t>{1, 3, 0}));
}

TEST(SelectTop, NanRanksAsMaskedSoOrderingStaysWellDefined) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> row = {1.0f, nan, 3.0f, nan, 2.0f, -kInf};
  std::vector<int32_t> got;
  select_top(row, 6, got);
  EXPECT_EQ(got, (std::vector<int32_t>{2, 4, 0, 1, 3, 5}));
  select_top(row, 2, got);
  EXPECT_EQ(got, (std::vector<int32_t>{2, 4}));
}

}  // namespace
}  // namespace hotswap::sampling
