#include "sampling/logits_processors.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

namespace hotswap {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<float> logits_from_probs(const std::vector<double>& probs) {
  std::vector<float> logits;
  for (double p : probs) logits.push_back(static_cast<float>(std::log(p)));
  return logits;
}

// Token ids that are still selectable (finite logit), ascending.
std::vector<int> kept(const std::vector<float>& logits) {
  std::vector<int> ids;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (logits[i] != -kInf) ids.push_back(static_cast<int>(i));
  }
  return ids;
}

// Surviving tokens keep their exact logit value.
void expect_survivors_unchanged(const std::vector<float>& before, const std::vector<float>& after) {
  for (int id : kept(after)) EXPECT_EQ(after[id], before[id]) << "token " << id;
}

// ---- repetition penalty ----------------------------------------------------------------

TEST(RepetitionPenalty, DividesPositiveAndMultipliesNegativeLogitsOfSeenTokensOnce) {
  std::vector<float> logits = {2.0f, -2.0f, 0.0f, 1.0f, 3.0f};
  const std::vector<int32_t> prompt = {0, 1, 0};
  const std::vector<int32_t> output = {1, 2, 0};
  apply_repetition_penalty(logits, prompt, output, 2.0f);
  // Token 0 occurs three times but is penalised once; 3 and 4 never occur.
  EXPECT_EQ(logits, (std::vector<float>{1.0f, -4.0f, 0.0f, 1.0f, 3.0f}));
}

TEST(RepetitionPenalty, BelowOneRewardsRepeatsAndOneIsOff) {
  std::vector<float> logits = {2.0f, -2.0f, 5.0f};
  const std::vector<int32_t> prompt = {0};
  const std::vector<int32_t> output = {1};
  apply_repetition_penalty(logits, prompt, output, 0.5f);
  EXPECT_EQ(logits, (std::vector<float>{4.0f, -1.0f, 5.0f}));
  apply_repetition_penalty(logits, prompt, output, 1.0f);
  EXPECT_EQ(logits, (std::vector<float>{4.0f, -1.0f, 5.0f}));
}

TEST(RepetitionPenalty, ScratchIsClearedBetweenCalls) {
  std::vector<float> first = {2.0f, 2.0f, 2.0f};
  const std::vector<int32_t> ids = {0, 1};
  apply_repetition_penalty(first, ids, {}, 2.0f);
  // A second row on the same thread with other ids must not see the first call's marks.
  std::vector<float> second = {2.0f, 2.0f, 2.0f};
  const std::vector<int32_t> other = {1, 2};
  apply_repetition_penalty(second, {}, other, 2.0f);
  EXPECT_EQ(second, (std::vector<float>{2.0f, 1.0f, 1.0f}));
}

TEST(RepetitionPenaltyDeathTest, TokenIdOutsideVocabIsAnInvariantFailure) {
  std::vector<float> logits = {1.0f, 2.0f};
  const std::vector<int32_t> ids = {2};
  EXPECT_DEATH(apply_repetition_penalty(logits, ids, {}, 1.5f), "outside vocab");
}

// ---- presence / frequency ----------------------------------------------------------------

TEST(PresenceFrequencyPenalties, SubtractPerOutputCountOnly) {
  std::vector<float> logits = {1.0f, 1.0f, 1.0f, 1.0f};
  const std::vector<int32_t> output = {0, 2, 0, 0};
  apply_presence_frequency_penalties(logits, output, 0.5f, 0.25f);
  // token 0: count 3 → 1 - 0.75 - 0.5; token 2: count 1 → 1 - 0.25 - 0.5.
  EXPECT_EQ(logits, (std::vector<float>{-0.25f, 1.0f, 0.25f, 1.0f}));
}

TEST(PresenceFrequencyPenalties, NegativeValuesEncourageAndZeroIsOff) {
  std::vector<float> logits = {0.0f, 0.0f};
  const std::vector<int32_t> output = {1, 1};
  apply_presence_frequency_penalties(logits, output, -1.0f, 0.0f);
  EXPECT_EQ(logits, (std::vector<float>{0.0f, 1.0f}));
  apply_presence_frequency_penalties(logits, output, 0.0f, 0.0f);
  EXPECT_EQ(logits, (std::vector<float>{0.0f, 1.0f}));
  // Counts were reset: the same call again subtracts the same amount, not a doubled one.
  apply_presence_frequency_penalties(logits, output, 0.0f, 0.5f);
  apply_presence_frequency_penalties(logits, output, 0.0f, 0.5f);
  EXPECT_EQ(logits, (std::vector<float>{0.0f, -1.0f}));
}

// ---- temperature -------------------------------------------------------------------------

TEST(Temperature, DividesEveryLogit) {
  std::vector<float> logits = {1.0f, -2.0f, 4.0f, -kInf};
  apply_temperature(logits, 0.5f);
  EXPECT_EQ(logits, (std::vector<float>{2.0f, -4.0f, 8.0f, -kInf}));
  apply_temperature(logits, 4.0f);
  EXPECT_EQ(logits, (std::vector<float>{0.5f, -1.0f, 2.0f, -kInf}));
}

// ---- top-k -------------------------------------------------------------------------------

TEST(TopK, KeepsTheKLargest) {
  const std::vector<float> before = {1.0f, 5.0f, 3.0f, 0.5f, 2.0f, 4.0f};
  std::vector<float> logits = before;
  apply_top_k(logits, 3);
  EXPECT_EQ(kept(logits), (std::vector<int>{1, 2, 5}));
  expect_survivors_unchanged(before, logits);
  logits = before;
  apply_top_k(logits, 1);
  EXPECT_EQ(kept(logits), (std::vector<int>{1}));
}

TEST(TopK, KeepsEveryTokenTiedWithTheKthValue) {
  std::vector<float> logits = {1.0f, 3.0f, 3.0f, 3.0f, 0.0f};
  apply_top_k(logits, 2);
  EXPECT_EQ(kept(logits), (std::vector<int>{1, 2, 3}));
}

TEST(TopK, ZeroOrAtLeastVocabIsOff) {
  const std::vector<float> before = {1.0f, 2.0f, 3.0f};
  for (int k : {0, -1, 3, 4, 1000}) {
    std::vector<float> logits = before;
    apply_top_k(logits, k);
    EXPECT_EQ(logits, before) << "k=" << k;
  }
}

TEST(TopK, LargeKMatchesSortedThreshold) {
  std::mt19937 gen(5);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> before(5000);
  for (float& v : before) v = std::round(normal(gen) * 4.0f) / 4.0f;  // many ties
  for (int k : {7, 1024, 1500, 4999}) {
    std::vector<float> sorted = before;
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    const float threshold = sorted[k - 1];
    std::vector<float> logits = before;
    apply_top_k(logits, k);
    for (size_t i = 0; i < before.size(); ++i) {
      EXPECT_EQ(logits[i] != -kInf, before[i] >= threshold) << "k=" << k << " token " << i;
    }
  }
}

// ---- top-p -------------------------------------------------------------------------------

TEST(TopP, KeepsSmallestHighestProbabilitySetReachingP) {
  // probabilities by id: 0.15, 0.5, 0.05, 0.3 → ranking 1, 3, 0, 2
  const std::vector<float> before = logits_from_probs({0.15, 0.5, 0.05, 0.3});
  const struct {
    float top_p;
    std::vector<int> expected;
  } cases[] = {
      {0.01f, {1}}, {0.45f, {1}}, {0.55f, {1, 3}}, {0.79f, {1, 3}}, {0.81f, {0, 1, 3}},
      {0.94f, {0, 1, 3}}, {0.96f, {0, 1, 2, 3}},
  };
  for (const auto& c : cases) {
    std::vector<float> logits = before;
    apply_top_p(logits, c.top_p);
    EXPECT_EQ(kept(logits), c.expected) << "top_p=" << c.top_p;
    expect_survivors_unchanged(before, logits);
  }
}

TEST(TopP, OneIsOffAndLeavesRowBitIdentical) {
  const std::vector<float> before = logits_from_probs({0.7, 0.2, 0.1});
  std::vector<float> logits = before;
  apply_top_p(logits, 1.0f);
  EXPECT_EQ(logits, before);
}

TEST(TopP, TieAtTheBoundaryKeepsTheLowerTokenId) {
  // ids 0 and 2 tie at 0.3; 0.4 + 0.3 reaches 0.6, so exactly one of them is needed.
  std::vector<float> logits = logits_from_probs({0.3, 0.4, 0.3});
  apply_top_p(logits, 0.6f);
  EXPECT_EQ(kept(logits), (std::vector<int>{0, 1}));
  // Equal logits everywhere: 2 of 5 tokens reach 0.35, and they are the lowest ids.
  std::vector<float> flat(5, 1.5f);
  apply_top_p(flat, 0.35f);
  EXPECT_EQ(kept(flat), (std::vector<int>{0, 1}));
}

TEST(TopP, LargeTiedNucleusKeepsTheLowestIds) {
  // 1000 equal tokens: 0.5005 needs 501 of them (0.501), more than the fast path's
  // candidates, so this runs the histogram path with a tie at the boundary.
  std::vector<float> flat(1000, -3.0f);
  apply_top_p(flat, 0.5005f);
  std::vector<int> expected(501);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(kept(flat), expected);
}

TEST(TopP, RenormalisesOverTokensLeftByTopK) {
  // After top-k 2: {0.4, 0.3} → {0.571, 0.429}. 0.55 then needs only the first token; over the
  // unfiltered distribution it would need two.
  std::vector<float> logits = logits_from_probs({0.4, 0.1, 0.3, 0.2});
  apply_top_k(logits, 2);
  apply_top_p(logits, 0.55f);
  EXPECT_EQ(kept(logits), (std::vector<int>{0}));
}

// Oracle: rank by (logit desc, id asc), accumulate double-precision softmax mass.
TEST(TopP, MatchesFullSortReferenceOnLargeRows) {
  std::mt19937 gen(17);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  int num_checked = 0;
  for (int trial = 0; trial < 6; ++trial) {
    const size_t vocab = 32000 + 777 * static_cast<size_t>(trial);
    std::vector<float> before(vocab);
    for (float& v : before) v = normal(gen);
    if (trial % 2 == 1) {
      for (float& v : before) v = std::round(v * 8.0f) / 8.0f;  // heavy ties
    }
    std::vector<int32_t> rank(vocab);
    std::iota(rank.begin(), rank.end(), 0);
    std::stable_sort(rank.begin(), rank.end(), [&](int32_t a, int32_t b) { return before[a] > before[b]; });
    const double m = before[rank[0]];
    double total = 0;
    for (float v : before) total += std::exp(v - m);
    for (float top_p : {0.05f, 0.3f, 0.5f, 0.9f, 0.99f}) {
      const double target = top_p * total;
      size_t num_needed = 0;
      double cumulative = 0;
      while (cumulative < target) cumulative += std::exp(before[rank[num_needed++]] - m);
      // The float kernel and this double oracle may disagree only when the boundary is
      // within rounding of the target (~1e-7 relative); such cases are skipped.
      const double last = std::exp(before[rank[num_needed - 1]] - m);
      if (cumulative - target < 1e-6 * total || target - (cumulative - last) < 1e-6 * total) continue;
      ++num_checked;

      std::vector<float> logits = before;
      apply_top_p(logits, top_p);
      std::vector<int> expected(rank.begin(), rank.begin() + static_cast<long>(num_needed));
      std::sort(expected.begin(), expected.end());
      EXPECT_EQ(kept(logits), expected) << "trial " << trial << " top_p " << top_p;
    }
  }
  EXPECT_GE(num_checked, 25);  // of 30 cases
}

TEST(TopP, KeepsAtLeastOneTokenOfADominantDistribution) {
  std::vector<float> logits = {0.0f, -50.0f, -60.0f, 10.0f};
  apply_top_p(logits, 0.999f);
  EXPECT_EQ(kept(logits), (std::vector<int>{3}));
}

// ---- min-p -------------------------------------------------------------------------------

TEST(MinP, DropsTokensBelowFractionOfMaxProbability) {
  // max prob 0.5; min_p 0.3 → threshold 0.15: 0.05 goes, 0.2 and 0.25 stay.
  const std::vector<float> before = logits_from_probs({0.5, 0.2, 0.05, 0.25});
  std::vector<float> logits = before;
  apply_min_p(logits, 0.3f);
  EXPECT_EQ(kept(logits), (std::vector<int>{0, 1, 3}));
  expect_survivors_unchanged(before, logits);
  logits = before;
  apply_min_p(logits, 0.45f);  // threshold 0.225
  EXPECT_EQ(kept(logits), (std::vector<int>{0, 3}));
}

TEST(MinP, OneKeepsOnlyTheTiedMaximumAndZeroIsOff) {
  const std::vector<float> before = {1.0f, 3.0f, 3.0f, 2.9f};
  std::vector<float> logits = before;
  apply_min_p(logits, 1.0f);
  EXPECT_EQ(kept(logits), (std::vector<int>{1, 2}));
  logits = before;
  apply_min_p(logits, 0.0f);
  EXPECT_EQ(logits, before);
}

}  // namespace
}  // namespace hotswap
