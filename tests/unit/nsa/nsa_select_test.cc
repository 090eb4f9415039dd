#include "attention/nsa/nsa_select.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <vector>

namespace hotswap {
namespace {

using nsa_detail::add_block_importance;
using nsa_detail::group_importance;
using nsa_detail::select_blocks;

NsaConfig config(int l, int s, int sel, int n) {
  NsaConfig c;
  c.compress_block_size = l;
  c.compress_stride = s;
  c.selection_block_size = sel;
  c.num_selected_blocks = n;
  return c;
}

std::vector<int32_t> select(const std::vector<float>& importance, int64_t t, const NsaConfig& c) {
  std::vector<int32_t> scratch(importance.size()), out(importance.size());
  out.resize(static_cast<size_t>(select_blocks(importance.data(), t, c, scratch.data(), out.data())));
  return out;
}

// The spec's rule written the slow way: forced blocks in order, then repeatedly the
// unchosen block of highest importance, the lowest index among equals.
std::vector<int32_t> select_by_spec(const std::vector<float>& imp, int64_t t, const NsaConfig& c) {
  const int32_t current = static_cast<int32_t>(t / c.selection_block_size);
  std::vector<int32_t> chosen;
  if (current + 1 <= c.num_selected_blocks) {
    for (int32_t b = 0; b <= current; ++b) chosen.push_back(b);
    return chosen;
  }
  for (int32_t b : {0, current, current - 1}) {
    if (static_cast<int>(chosen.size()) < c.num_selected_blocks && b >= 0 &&
        std::find(chosen.begin(), chosen.end(), b) == chosen.end()) {
      chosen.push_back(b);
    }
  }
  while (static_cast<int>(chosen.size()) < c.num_selected_blocks) {
    int32_t best = -1;
    for (int32_t b = 0; b <= current; ++b) {
      if (std::find(chosen.begin(), chosen.end(), b) != chosen.end()) continue;
      if (best < 0 || imp[b] > imp[best]) best = b;  // strict: the first (lowest) of equals stays
    }
    chosen.push_back(best);
  }
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

TEST(NsaSelect, AllBlocksWhenAtMostN) {
  const NsaConfig c = config(16, 8, 16, 4);
  EXPECT_EQ(select({0.0f}, 0, c), (std::vector<int32_t>{0}));
  EXPECT_EQ(select({0.1f, 0.2f, 0.3f, 0.4f}, 63, c), (std::vector<int32_t>{0, 1, 2, 3}));
}

TEST(NsaSelect, ForcedBlocksComeFirstInSpecOrder) {
  // 10 blocks (t = 150, l' = 16 -> current 9), importance favouring blocks 4 and 5.
  std::vector<float> imp = {0.0f, 0.1f, 0.1f, 0.1f, 0.9f, 0.8f, 0.1f, 0.1f, 0.0f, 0.0f};
  EXPECT_EQ(select(imp, 150, config(16, 8, 16, 1)), (std::vector<int32_t>{0}));
  EXPECT_EQ(select(imp, 150, config(16, 8, 16, 2)), (std::vector<int32_t>{0, 9}));
  EXPECT_EQ(select(imp, 150, config(16, 8, 16, 3)), (std::vector<int32_t>{0, 8, 9}));
  EXPECT_EQ(select(imp, 150, config(16, 8, 16, 4)), (std::vector<int32_t>{0, 4, 8, 9}));
  EXPECT_EQ(select(imp, 150, config(16, 8, 16, 5)), (std::vector<int32_t>{0, 4, 5, 8, 9}));
}

TEST(NsaSelect, ForcedBlocksAreTakenOnce) {
  // t = 40 lies in block 2 of 3; n = 2 takes block 0 and the current block, never the previous.
  std::vector<float> imp = {0.0f, 5.0f, 0.0f};
  EXPECT_EQ(select(imp, 40, config(16, 8, 16, 2)), (std::vector<int32_t>{0, 2}));
  // t in block 1 of 2 blocks, n = 1: only block 0 even though block 1 holds the query.
  EXPECT_EQ(select({0.0f, 1.0f}, 20, config(16, 8, 16, 1)), (std::vector<int32_t>{0}));
}

TEST(NsaSelect, TiesGoToTheLowerIndex) {
  std::vector<float> imp(12, 0.25f);
  imp[7] = 0.5f;
  // forced 0, 11, 10; then 7 (highest), then the ties 1, 2 (lowest indexes).
  EXPECT_EQ(select(imp, 11 * 8 + 3, config(8, 4, 8, 6)), (std::vector<int32_t>{0, 1, 2, 7, 10, 11}));
  std::vector<float> zeros(12, 0.0f);
  EXPECT_EQ(select(zeros, 11 * 8 + 3, config(8, 4, 8, 5)), (std::vector<int32_t>{0, 1, 2, 10, 11}));
}

TEST(NsaSelect, MatchesTheSpecRuleOnRandomImportanceWithManyTies) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 3000; ++trial) {
    const int sel = 4 << (rng() % 3);
    const int n = 1 + static_cast<int>(rng() % 7);
    const int64_t t = static_cast<int64_t>(rng() % 400);
    const NsaConfig c = config(sel, 4, sel, n);
    std::vector<float> imp(static_cast<size_t>(c.num_selection_blocks(t)));
    for (float& x : imp) x = static_cast<float>(rng() % 4) * 0.25f;  // coarse values: ties everywhere
    ASSERT_EQ(select(imp, t, c), select_by_spec(imp, t, c)) << "trial " << trial << " t=" << t << " n=" << n;
  }
}

TEST(NsaImportance, BlockAcrossABoundaryCountsForBoth) {
  // l = 16, s = 8, l' = 8: block j covers [8j, 8j + 16) = selection blocks j and j + 1.
  const NsaConfig c = config(16, 8, 8, 4);
  const std::vector<float> p = {0.5f, 0.3f, 0.2f};
  std::vector<float> imp(5, 0.0f);
  add_block_importance(p.data(), 3, c, 5, imp.data());
  EXPECT_EQ(imp, (std::vector<float>{0.5f, 0.5f + 0.3f, 0.3f + 0.2f, 0.2f, 0.0f}));
}

TEST(NsaImportance, LargeSelectionBlocksGatherSeveralCompressedBlocks) {
  // l = 8, s = 4, l' = 16: block j covers [4j, 4j + 8); selection block b = [16b, 16b + 16).
  const NsaConfig c = config(8, 4, 16, 4);
  const std::vector<float> p = {1, 2, 4, 8, 16, 32};  // j = 3 covers [12, 20): both blocks
  std::vector<float> imp(3, 0.0f);
  add_block_importance(p.data(), 6, c, 3, imp.data());
  EXPECT_EQ(imp, (std::vector<float>{1 + 2 + 4 + 8, 8 + 16 + 32, 0}));  // block 2 is overlapped by none yet
}

TEST(NsaImportance, GroupSumsItsHeads) {
  const NsaConfig c = config(4, 4, 4, 2);
  const std::vector<float> p = {0.75f, 0.25f, /* head 1 */ 0.125f, 0.875f};
  std::vector<float> scratch(3), imp(3);
  group_importance(p.data(), 2, 2, 2, c, 3, scratch.data(), imp.data());
  EXPECT_EQ(imp, (std::vector<float>{0.875f, 1.125f, 0.0f}));
}

}  // namespace
}  // namespace hotswap
