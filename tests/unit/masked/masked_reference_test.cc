// The reference kernel (Part 1 "Composition and the output", Part 2 §1.1), density and the
// relative error helper.
#include "attention/masked/masked_reference.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "attention/masked/select_keys.h"
#include "masked_test_util.h"

namespace hotswap::masked {
namespace {

using testing::TestCache;

TEST(MaskedReference, AllKeysAtWeightOneEqualsDense) {
  for (int group : {1, 2, 4}) {
    for (int bs : {1, 4, 16}) {
      const int hkv = 2, h = hkv * group, d = 16, positions = 37;
      TestCache cache(positions, hkv, d, bs, true);
      cache.fill_random(10 + bs, 1.5f);
      const auto q = testing::random_query(h, d, 20 + group);
      for (int t : {0, 17, 36}) {
        const QueryContext ctx{0, t, 0, 0.25f};
        std::vector<HeadSelection> sel(h);
        for (auto& s : sel) {
          for (int j = 0; j <= t; ++j) s.keys.push_back(j);
          s.weights.assign(s.keys.size(), 1.0f);
        }
        std::vector<float> dense(static_cast<size_t>(h) * d), masked(dense.size());
        dense_attention_reference(q.data(), h, cache.view(), ctx, dense.data());
        masked_attention_reference(q.data(), h, cache.view(), ctx, sel, masked.data());
        for (size_t i = 0; i < dense.size(); ++i) EXPECT_NEAR(masked[i], dense[i], 1e-6) << i;
        // dense heads are the dense output too
        for (auto& s : sel) s.dense = true;
        masked_attention_reference(q.data(), h, cache.view(), ctx, sel, masked.data());
        for (size_t i = 0; i < dense.size(); ++i) EXPECT_EQ(masked[i], dense[i]);
      }
    }
  }
}

TEST(MaskedReference, WeightedSoftmaxByHand) {
  // One head, d = 2, keys with q.k = 0, ln 2, 0 (scale 1) at positions 1, 3, 4 of 0..4.
  TestCache cache(5, 1, 2, 2, true);
  const float logk[5] = {9.0f, 0.0f, 9.0f, std::log(2.0f), 0.0f};  // 0 and 2 are never selected
  for (int j = 0; j < 5; ++j) {
    cache.key_mut(j, 0)[0] = logk[j];
    cache.value_mut(j, 0)[0] = static_cast<float>(j);
    cache.value_mut(j, 0)[1] = 1.0f;
  }
  const std::vector<float> q = {1.0f, 0.0f};
  std::vector<HeadSelection> sel(1);
  sel[0].keys = {1, 3, 4};
  sel[0].weights = {1.0f, 0.5f, 0.25f};
  // exp(s_j) / (w_j + 1e-6): 1 / (1 + 1e-6), 2 / (0.5 + 1e-6), 1 / (0.25 + 1e-6)
  const double a = 1.0 / (1.0 + 1e-6), b = 2.0 / (static_cast<double>(0.5f) + 1e-6),
               c = 1.0 / (static_cast<double>(0.25f) + 1e-6);
  const double want0 = (a * 1 + b * 3 + c * 4) / (a + b + c);
  std::vector<float> out(2);
  masked_attention_reference(q.data(), 1, cache.view(), QueryContext{0, 4, 0, 1.0f}, sel, out.data());
  EXPECT_NEAR(out[0], want0, 1e-6);
  EXPECT_NEAR(out[1], 1.0, 1e-6);
}

TEST(MaskedReference, DensityAndRelativeError) {
  std::vector<HeadSelection> sel(3);
  sel[0].keys = {0, 1};
  sel[1].keys = {0, 1, 2, 3};
  sel[2].dense = true;  // counts 1.0
  EXPECT_DOUBLE_EQ(selection_density(sel, 7), (2.0 / 8 + 4.0 / 8 + 1.0) / 3);
  const float dense[4] = {3, 0, 4, 0}, approx[4] = {3, 0, 4, 5};
  EXPECT_DOUBLE_EQ(relative_l2_error(dense, approx, 4), 1.0);
  EXPECT_DOUBLE_EQ(relative_l2_error(dense, dense, 4), 0.0);
}

TEST(MaskedReference, SinkAndLocalErrorShrinksAsTheWindowGrows) {
  const int positions = 256, d = 32;
  TestCache cache(positions, 1, d, 16, true);
  cache.fill_random(3);
  const auto q = testing::random_query(2, d, 4);
  const QueryContext ctx{0, positions - 1, 0, 1.0f / std::sqrt(static_cast<float>(d))};
  std::vector<float> dense(2 * d), out(2 * d);
  dense_attention_reference(q.data(), 2, cache.view(), ctx, dense.data());
  double previous = 1e9;
  for (int w : {16, 64, 160, 250}) {
    const MaskedConfig c =
        testing::config_of(R"({"maskers":[{"type":"sink","sink_size":4},{"type":"local","window_size":)" +
                           std::to_string(w) + "}]}");
    SelectionScratch scratch;
    std::vector<HeadSelection> sel;
    select_keys(c, ctx, q.data(), 2, cache.view(), scratch, &sel);
    masked_attention_reference(q.data(), 2, cache.view(), ctx, sel, out.data());
    const double err = relative_l2_error(dense.data(), out.data(), dense.size());
    EXPECT_LT(err, previous) << "window " << w;
    previous = err;
    EXPECT_NEAR(selection_density(sel, positions - 1), (4.0 + w) / positions, 1e-12);
  }
  EXPECT_LT(previous, 0.05);
}

}  // namespace
}  // namespace hotswap::masked
