// select_keys for the deterministic maskers (sink, local, causal, oracle top-k / top-p) on
// hand-built paged caches: exact key sets, FULL boundaries (Part 2 §7), ties, composition,
// GQA and paging invariance.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "attention/masked/select_keys.h"
#include "masked_test_util.h"

namespace hotswap::masked {
namespace {

using testing::config_of;
using testing::TestCache;

std::string list(const std::string& maskers) {
  return R"({"maskers":[)" + maskers + "]}";
}

std::vector<HeadSelection> run(const MaskedConfig& c, const TestCache& cache, const std::vector<float>& q,
                               int num_heads, int t, float scale = 1.0f, uint64_t seed = 0, int layer = 0) {
  SelectionScratch scratch;
  std::vector<HeadSelection> out;
  QueryContext ctx{layer, t, seed, scale};
  select_keys(c, ctx, q.data(), num_heads, cache.view(), scratch, &out);
  return out;
}

std::vector<int32_t> range_keys(int lo, int hi) {  // [lo, hi]
  std::vector<int32_t> r;
  for (int j = lo; j <= hi; ++j) r.push_back(j);
  return r;
}

void expect_all_dense(const std::vector<HeadSelection>& sel) {
  for (const HeadSelection& s : sel) {
    EXPECT_TRUE(s.dense);
    EXPECT_TRUE(s.keys.empty());
  }
}

// Every head selects exactly `keys`, all at weight 1.
void expect_keys(const std::vector<HeadSelection>& sel, const std::vector<int32_t>& keys) {
  for (size_t h = 0; h < sel.size(); ++h) {
    SCOPED_TRACE("head " + std::to_string(h));
    EXPECT_FALSE(sel[h].dense);
    EXPECT_EQ(sel[h].keys, keys);
    EXPECT_EQ(sel[h].weights, std::vector<float>(keys.size(), 1.0f));
  }
}

// A cache whose key j of every KV head is (score[g][j], 0, 0, 0); query (1, 0, 0, 0) then
// scores exactly score[g][j].
TestCache scored_cache(const std::vector<std::vector<float>>& scores, int block_size = 4,
                       bool shuffled = true) {
  const int n = static_cast<int>(scores[0].size());
  TestCache cache(n, static_cast<int>(scores.size()), 4, block_size, shuffled);
  for (size_t g = 0; g < scores.size(); ++g)
    for (int j = 0; j < n; ++j) {
      cache.key_mut(j, static_cast<int>(g))[0] = scores[g][j];
      cache.value_mut(j, static_cast<int>(g))[1] = static_cast<float>(j);
    }
  return cache;
}

std::vector<float> unit_query(int num_heads) {
  std::vector<float> q(static_cast<size_t>(num_heads) * 4, 0.0f);
  for (int h = 0; h < num_heads; ++h) q[static_cast<size_t>(h) * 4] = 1.0f;
  return q;
}

TEST(MaskedSelect, SinkSelectsFirstKeysAndIsFullWhenSkAtMostSinkSize) {
  TestCache cache(12, 2, 8, 3, true);
  cache.fill_random(1);
  const auto q = testing::random_query(4, 8, 2);
  const MaskedConfig c = config_of(list(R"({"type":"sink","sink_size":3})"));
  expect_all_dense(run(c, cache, q, 4, 2));  // sk = 3 <= 3
  expect_keys(run(c, cache, q, 4, 3), {0, 1, 2});
  expect_keys(run(c, cache, q, 4, 11), {0, 1, 2});
}

TEST(MaskedSelect, LocalSelectsWindowEndingAtTheQueryAndIsFullWhenSkAtMostWindowPlusOne) {
  TestCache cache(12, 1, 8, 5, true);
  cache.fill_random(3);
  const auto q = testing::random_query(2, 8, 4);
  const MaskedConfig c = config_of(list(R"({"type":"local","window_size":4})"));
  expect_all_dense(run(c, cache, q, 2, 4));  // sk = 5 <= W + 1
  expect_keys(run(c, cache, q, 2, 5), {2, 3, 4, 5});
  expect_keys(run(c, cache, q, 2, 11), {8, 9, 10, 11});
  // fraction window: W = int(0.5 * sk): sk = 2 -> W = 1, FULL; sk = 3 -> W = 1, key {2}
  const MaskedConfig f = config_of(list(R"({"type":"local","window_size":0.5})"));
  expect_all_dense(run(f, cache, q, 2, 1));
  expect_keys(run(f, cache, q, 2, 2), {2});
  expect_keys(run(f, cache, q, 2, 11), range_keys(6, 11));
}

TEST(MaskedSelect, SinkAndLocalComposeWithFractionSizesTruncated) {
  TestCache cache(100, 2, 4, 16, true);
  cache.fill_random(5);
  const auto q = testing::random_query(2, 4, 6);
  // sk = 40: sink int(0.25 * 40) = 10 keys, window int(0.1 * 40) = 4 keys
  const MaskedConfig c =
      config_of(list(R"({"type":"sink","sink_size":0.25},{"type":"local","window_size":0.1})"));
  std::vector<int32_t> expected = range_keys(0, 9);
  for (int j = 36; j <= 39; ++j) expected.push_back(j);
  expect_keys(run(c, cache, q, 2, 39), expected);
  // sk = 100: int(0.29 * 100) == 28 (float truncation, as in Python)
  expect_keys(run(config_of(list(R"({"type":"sink","sink_size":0.29})")), cache, q, 2, 99),
              range_keys(0, 27));
  // overlapping sink and window: each key once
  const MaskedConfig o = config_of(list(R"({"type":"sink","sink_size":4},{"type":"local","window_size":3})"));
  expect_keys(run(o, cache, q, 2, 5), range_keys(0, 5));
  // the order of the maskers does not change a union of weight-1 sets
  const MaskedConfig r =
      config_of(list(R"({"type":"local","window_size":3},{"type":"causal"},{"type":"sink","sink_size":2})"));
  expect_keys(run(r, cache, q, 2, 20), {0, 1, 18, 19, 20});
}

TEST(MaskedSelect, EmptyOrFullPipelinesAreDense) {
  TestCache cache(50, 1, 4, 8);
  cache.fill_random(7);
  const auto q = testing::random_query(1, 4, 8);
  expect_all_dense(run(config_of(list(R"({"type":"causal"})")), cache, q, 1, 20));  // EMPTY
  const std::string adaptive_off =
      R"({"type":"adaptive_sampling","base_rate_sampling":0,"epsilon":0.1,"delta":0.1,"init_offset":0,"local_offset":0})";
  expect_all_dense(run(config_of(list(adaptive_off)), cache, q, 1, 20));  // base rate 0: a no-op, EMPTY
  expect_keys(run(config_of(list(R"({"type":"sink","sink_size":2},)" + adaptive_off)), cache, q, 1, 20),
              {0, 1});
  // a FULL masker anywhere discards what came before: local FULL at sk = 5 after a sink
  expect_all_dense(run(config_of(list(R"({"type":"sink","sink_size":1},{"type":"local","window_size":4})")),
                       cache, q, 1, 4));
  // Decision: a SPARSE mask whose rows select nothing (sizes truncated to 0, random n == 0) is dense
  expect_all_dense(run(config_of(list(R"({"type":"sink","sink_size":0.01})")), cache, q, 1, 49));
  expect_all_dense(
      run(config_of(list(R"({"type":"random_sampling","sampling_rate":0.01})")), cache, q, 1, 49));
  expect_all_dense(run(config_of(list(R"({"type":"oracle_top_k","heavy_size":0.01})")), cache, q, 1, 49));
  expect_keys(run(config_of(list(R"({"type":"sink","sink_size":0.01},{"type":"local","window_size":2})")),
                  cache, q, 1, 49),
              {48, 49});
}

TEST(MaskedSelect, TopKPicksHighestUnscaledScoresTiesToLowerPositions) {
  //                       0  1  2  3  4  5  6  7  8  9 10 11
  const std::vector<float> s = {0, 5, 1, 5, 2, 5, 3, 0, 0, 5, 1, 0};
  const TestCache cache = scored_cache({s});
  const auto q = unit_query(1);
  expect_keys(run(config_of(list(R"({"type":"oracle_top_k","heavy_size":3})")), cache, q, 1, 11, 0.125f),
              {1, 3, 5});
  expect_keys(run(config_of(list(R"({"type":"oracle_top_k","heavy_size":5})")), cache, q, 1, 11),
              {1, 3, 5, 6, 9});
  // only keys 0..t are candidates: at t = 4, scores 0 5 1 5 2
  expect_keys(run(config_of(list(R"({"type":"oracle_top_k","heavy_size":2})")), cache, q, 1, 4), {1, 3});
  // FULL when sk <= k: heavy 5 at sk = 5
  expect_all_dense(run(config_of(list(R"({"type":"oracle_top_k","heavy_size":5})")), cache, q, 1, 4));
  // fraction: int(0.25 * 12) = 3
  expect_keys(run(config_of(list(R"({"type":"oracle_top_k","heavy_size":0.25})")), cache, q, 1, 11),
              {1, 3, 5});
}

TEST(MaskedSelect, TopKAddsKNewKeysAmongInactiveOnes) {
  const std::vector<float> s = {9, 8, 1, 5, 2, 5, 3, 0, 0, 4, 1, 7};
  const TestCache cache = scored_cache({s});
  const auto q = unit_query(1);
  // sink {0, 1} (the two best) and local {10, 11}; top-3 among the rest: 3, 5 (ties), 9
  expect_keys(run(config_of(list(R"({"type":"sink","sink_size":2},{"type":"local","window_size":2},)"
                                 R"({"type":"oracle_top_k","heavy_size":3})")),
                  cache, q, 1, 11),
              {0, 1, 3, 5, 9, 10, 11});
  // fewer inactive keys than k (sink 4 at sk = 6 leaves 2): both, then the lowest active one
  expect_keys(run(config_of(list(R"({"type":"sink","sink_size":4},{"type":"oracle_top_k","heavy_size":3})")),
                  cache, q, 1, 5),
              range_keys(0, 5));
}

TEST(MaskedSelect, TopKIsPerQueryHeadWithGqa) {
  // KV head 0 favours low positions, KV head 1 high ones; query heads 0-1 read KV head 0,
  // heads 2-3 KV head 1; head 1 and head 3 negate the query, so they favour the other end.
  std::vector<float> up(10), down(10);
  for (int j = 0; j < 10; ++j) {
    up[j] = static_cast<float>(j);
    down[j] = static_cast<float>(10 - j);
  }
  const TestCache cache = scored_cache({down, up}, 3, true);
  std::vector<float> q = unit_query(4);
  q[1 * 4] = -1.0f;
  q[3 * 4] = -1.0f;
  const auto sel = run(config_of(list(R"({"type":"oracle_top_k","heavy_size":2})")), cache, q, 4, 9);
  EXPECT_EQ(sel[0].keys, (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(sel[1].keys, (std::vector<int32_t>{8, 9}));
  EXPECT_EQ(sel[2].keys, (std::vector<int32_t>{8, 9}));
  EXPECT_EQ(sel[3].keys, (std::vector<int32_t>{0, 1}));
}

// e (relative to the best key, scale 1): key 2 -> 1, key 7 -> 1/2, key 4 -> 1/4, keys 0 and 9
// -> 1/8 (identical rows), the others ~ 0. Shares of the sorted mass: 0.5, 0.75, 0.875, 0.9375, 1.
TestCache top_p_cache() {
  std::vector<float> s(10, -40.0f);
  s[2] = 0.0f;
  s[7] = std::log(0.5f);
  s[4] = std::log(0.25f);
  s[0] = std::log(0.125f);
  s[9] = std::log(0.125f);
  return scored_cache({s}, 3, true);
}

TEST(MaskedSelect, TopPSelectsSmallestPrefixStrictlyExceedingTopPWithTies) {
  const TestCache cache = top_p_cache();
  const auto q = unit_query(2);
  auto top_p = [&](const std::string& p) {
    return run(config_of(list(R"({"type":"oracle_top_p","top_p":)" + p + "}")), cache, q, 2, 9);
  };
  expect_keys(top_p("0.3"), {2});
  expect_keys(top_p("0.0"), {2});
  expect_keys(top_p("0.6"), {2, 7});
  expect_keys(top_p("0.85"), {2, 4, 7});
  expect_keys(top_p("0.95"), {0, 2, 4, 7, 9});  // tau = 1/8: both tied keys
  expect_all_dense(top_p("1.0"));               // int(1.0 * sk) >= sk
}

TEST(MaskedSelect, TopPMeasuresTheResidualMassOnly) {
  const TestCache cache = top_p_cache();
  const auto q = unit_query(1);
  // sink {0, 1, 2} takes the best key; the residual is 7 (1/2), 4 (1/4), 9 (1/8): shares 0.57, 0.86
  expect_keys(run(config_of(list(R"({"type":"sink","sink_size":3},{"type":"oracle_top_p","top_p":0.6})")),
                  cache, q, 1, 9),
              {0, 1, 2, 4, 7});
}

TEST(MaskedSelect, TopPDegenerateThresholdZeroReselectsActiveKeys) {
  TestCache cache(40, 1, 4, 8, true);
  cache.fill_random(11);
  const auto q = testing::random_query(1, 4, 12);
  // A sampler first writes weight 0.5 on its keys; top_p 0.99999999 is 1.0f in float32, so
  // pos = n - 1 and tau = the smallest e, 0 (an active key): every key gets clamp(w + 1) = 1.
  const auto sel = run(config_of(list(R"({"type":"random_sampling","sampling_rate":0.5},)"
                                      R"({"type":"oracle_top_p","top_p":0.99999999})")),
                       cache, q, 1, 39);
  expect_keys(sel, range_keys(0, 39));
  // A non-degenerate top-p leaves the sampled keys at 0.5 (e = 0 < tau).
  const auto some = run(config_of(list(R"({"type":"random_sampling","sampling_rate":0.5},)"
                                       R"({"type":"oracle_top_p","top_p":0.5})")),
                        cache, q, 1, 39);
  const auto sampled =
      run(config_of(list(R"({"type":"random_sampling","sampling_rate":0.5})")), cache, q, 1, 39);
  int half = 0;
  for (size_t i = 0; i < some[0].keys.size(); ++i) half += some[0].weights[i] == 0.5f;
  EXPECT_EQ(half, static_cast<int>(sampled[0].keys.size()));
  EXPECT_GT(some[0].keys.size(), sampled[0].keys.size());
}

// The reference's algorithm written plainly (sort descending, double cumsum rounded to float
// per prefix, float32 division and comparison, searchsorted right, clamp, e >= tau) over
// exact scores, against the library's sort-free search: random sizes, quantised scores (many
// ties), active keys from a sink, random top_p.
TEST(MaskedSelect, TopPMatchesTheSortedReferenceAlgorithm) {
  std::mt19937 rng(77);
  for (int trial = 0; trial < 300; ++trial) {
    const int n = 2 + static_cast<int>(rng() % 400);
    const int sink = static_cast<int>(rng() % 3);
    const float quantum = (trial % 3 == 0) ? 0.5f : 1e-3f;
    std::vector<float> s(static_cast<size_t>(n));
    std::uniform_real_distribution<float> u(-6.0f, 2.0f);
    for (float& x : s) x = std::round(u(rng) / quantum) * quantum;
    const TestCache cache = scored_cache({s}, 8, (trial % 2) == 1);
    const double top_p = std::uniform_real_distribution<double>(0.0, 0.999)(rng);
    std::string cfg = R"({"type":"oracle_top_p","top_p":)" + nlohmann::json(top_p).dump() + "}";
    if (sink > 0 && n > sink) cfg = R"({"type":"sink","sink_size":)" + std::to_string(sink) + "}," + cfg;
    const auto sel = run(config_of(list(cfg)), cache, unit_query(1), 1, n - 1);
    if (sel[0].dense) continue;  // int(top_p * n) >= n cannot happen below 1.0; sink FULL only
    const int active = (sink > 0 && n > sink) ? sink : 0;
    std::vector<float> e(static_cast<size_t>(n));
    float mx = -FLT_MAX;
    for (int j = 0; j < n; ++j) mx = std::max(mx, j < active ? -FLT_MAX : s[j]);
    for (int j = 0; j < n; ++j) e[j] = std::exp((j < active ? -FLT_MAX : s[j]) - mx);
    std::vector<float> sorted = e;
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    std::vector<float> cum(static_cast<size_t>(n));
    double acc = 0;
    for (int i = 0; i < n; ++i) cum[i] = static_cast<float>(acc += sorted[i]);
    int pos = 0;
    while (pos < n && cum[pos] / cum[n - 1] <= static_cast<float>(top_p)) ++pos;
    const float tau = sorted[std::min(pos, n - 1)];
    std::vector<int32_t> want;
    for (int j = 0; j < n; ++j)
      if (j < active || e[j] >= tau) want.push_back(j);
    EXPECT_EQ(sel[0].keys, want) << "trial " << trial << " n " << n << " top_p " << top_p;
  }
}

// The selection of each query head must not depend on the paging (block size, table order) and
// must equal that of a one-head run over its own KV head (GQA mapping h -> h / group).
TEST(MaskedSelect, IndependentOfPagingAndMapsQueryHeadsToKvHeads) {
  const std::string cfg = list(
      R"({"type":"sink","sink_size":2},{"type":"local","window_size":0.1},{"type":"oracle_top_k","heavy_size":4},)"
      R"({"type":"oracle_top_p","top_p":0.3})");
  const MaskedConfig c = config_of(cfg);
  const int positions = 61, d = 12, hkv = 2;
  for (int group : {1, 2, 4}) {
    const int h = hkv * group;
    const auto q = testing::random_query(h, d, 100 + group);
    TestCache base(positions, hkv, d, positions, false);
    base.fill_random(200, 2.0f);
    for (int t : {20, 45, 60}) {
      const auto want = run(c, base, q, h, t, 0.3f);
      for (int bs : {1, 3, 16}) {
        for (bool shuffled : {false, true}) {
          SCOPED_TRACE("group " + std::to_string(group) + " t " + std::to_string(t) + " block " +
                       std::to_string(bs) + (shuffled ? " shuffled" : ""));
          TestCache paged(positions, hkv, d, bs, shuffled, 5u + bs);
          paged.fill_random(200, 2.0f);
          const auto got = run(c, paged, q, h, t, 0.3f);
          for (int i = 0; i < h; ++i) {
            EXPECT_EQ(got[i].keys, want[i].keys);
            EXPECT_EQ(got[i].weights, want[i].weights);
          }
        }
      }
      for (int i = 0; i < h; ++i) {  // one query head alone over a copy of its KV head
        TestCache single(positions, 1, d, 7, true);
        for (int j = 0; j < positions; ++j)
          for (int x = 0; x < d; ++x) {
            single.key_mut(j, 0)[x] = base.key_mut(j, i / group)[x];
            single.value_mut(j, 0)[x] = base.value_mut(j, i / group)[x];
          }
        const std::vector<float> qi(q.begin() + i * d, q.begin() + (i + 1) * d);
        const auto one = run(c, single, qi, 1, t, 0.3f);
        EXPECT_EQ(one[0].keys, want[i].keys) << "head " << i;
      }
    }
  }
}

// Brute force over the logical rows (double scores): the top-k keys outscore every other
// candidate, and the sink/local keys are present.
TEST(MaskedSelect, TopKMatchesBruteForce) {
  const int positions = 200, d = 16;
  TestCache cache(positions, 1, d, 16, true);
  cache.fill_random(31);
  const auto q = testing::random_query(1, d, 32);
  const MaskedConfig c =
      config_of(list(R"({"type":"sink","sink_size":4},{"type":"oracle_top_k","heavy_size":0.1})"));
  for (int t : {50, 120, 199}) {
    const auto sel = run(c, cache, q, 1, t);
    const int k = static_cast<int>(0.1 * (t + 1));
    std::vector<double> score(static_cast<size_t>(t) + 1);
    for (int j = 0; j <= t; ++j) {
      double s = 0;
      for (int x = 0; x < d; ++x) s += static_cast<double>(q[x]) * cache.key_mut(j, 0)[x];
      score[j] = s;
    }
    ASSERT_EQ(sel[0].keys.size(), static_cast<size_t>(4 + k));
    double worst_selected = 1e300, best_rejected = -1e300;
    for (int j = 4; j <= t; ++j) {
      const bool in = std::binary_search(sel[0].keys.begin(), sel[0].keys.end(), j);
      if (in)
        worst_selected = std::min(worst_selected, score[j]);
      else
        best_rejected = std::max(best_rejected, score[j]);
    }
    for (int j = 0; j < 4; ++j) EXPECT_TRUE(std::binary_search(sel[0].keys.begin(), sel[0].keys.end(), j));
    EXPECT_GE(worst_selected, best_rejected - 1e-5);
  }
}

TEST(MaskedSelect, ScratchIsReusableAcrossQueriesAndSizes) {
  TestCache cache(300, 2, 8, 16, true);
  cache.fill_random(41);
  const auto q = testing::random_query(4, 8, 42);
  const MaskedConfig c = config_of(
      list(R"({"type":"sink","sink_size":3},{"type":"oracle_top_k","heavy_size":0.05},)"
           R"({"type":"oracle_top_p","top_p":0.2},{"type":"random_sampling","sampling_rate":0.1})"));
  SelectionScratch shared;
  for (int t : {299, 10, 150, 299, 3}) {
    std::vector<HeadSelection> a, b;
    QueryContext ctx{1, t, 9, 0.35f};
    select_keys(c, ctx, q.data(), 4, cache.view(), shared, &a);
    SelectionScratch fresh;
    select_keys(c, ctx, q.data(), 4, cache.view(), fresh, &b);
    for (int h = 0; h < 4; ++h) {
      EXPECT_EQ(a[h].dense, b[h].dense);
      EXPECT_EQ(a[h].keys, b[h].keys);
      EXPECT_EQ(a[h].weights, b[h].weights);
      for (size_t i = 0; i < a[h].keys.size(); ++i) {
        EXPECT_TRUE(a[h].keys[i] >= 0 && a[h].keys[i] <= t);
        if (i > 0) {
          EXPECT_LT(a[h].keys[i - 1], a[h].keys[i]);
        }
        EXPECT_TRUE(a[h].weights[i] > 0.0f && a[h].weights[i] <= 1.0f);
      }
    }
  }
}

}  // namespace
}  // namespace hotswap::masked
