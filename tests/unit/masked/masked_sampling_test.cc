// The counter-based generator and the sampling maskers (Part 1 "Determinism", Part 2 §5.1,
// §5.3): known answers, uniformity, reproducibility, weights, the adaptive budget formula, and
// the estimator's mean against dense attention.
#include <gtest/gtest.h>

#include <boost/math/distributions/chi_squared.hpp>
#include <cmath>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "attention/masked/counter_rng.h"
#include "attention/masked/masked_reference.h"
#include "attention/masked/select_keys.h"
#include "masked_test_util.h"

namespace hotswap::masked {
namespace {

using testing::config_of;
using testing::TestCache;

std::string list(const std::string& maskers) {
  return R"({"maskers":[)" + maskers + "]}";
}

TEST(MaskedCounterRng, Philox4x32_10KnownAnswers) {  // Random123's kat_vectors
  EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, {0, 0}),
            (std::array<uint32_t, 4>{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}),
            (std::array<uint32_t, 4>{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}),
            (std::array<uint32_t, 4>{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(MaskedCounterRng, FillEqualsIndividualDrawsAndStaysInRange) {
  const CounterRng rng(123456789012345ull, 3, 5, 77, RngStream::kTest);
  for (auto [lo, hi] :
       std::vector<std::pair<int64_t, int64_t>>{{0, 1}, {5, 12}, {0, 1000}, {-7, 3ll << 29}}) {
    std::vector<int32_t> out(37);
    rng.fill(3, 37, lo, hi, out.data());  // starts mid-block
    for (int i = 0; i < 37; ++i) {
      EXPECT_EQ(out[i], rng.uniform(3 + i, lo, hi));
      EXPECT_TRUE(out[i] >= lo && out[i] < hi);
    }
  }
  for (int i = 0; i < 100; ++i) {  // the widest ranges, int64 results
    const int64_t x = rng.uniform(i, 0, int64_t{3} << 30), y = rng.uniform(i, 10, (int64_t{1} << 32) + 10);
    EXPECT_TRUE(x >= 0 && x < (int64_t{3} << 30));
    EXPECT_TRUE(y >= 10 && y < (int64_t{1} << 32) + 10);
  }
}

TEST(MaskedCounterRng, EveryKeyComponentChangesTheDraws) {
  auto draws = [](uint64_t seed, int layer, int head, int pos, RngStream s) {
    std::vector<int32_t> out(8);
    CounterRng(seed, layer, head, pos, s).fill(0, 8, 0, 1 << 30, out.data());
    return out;
  };
  const auto base = draws(1, 2, 3, 4, RngStream::kRandomSampling);
  EXPECT_EQ(base, draws(1, 2, 3, 4, RngStream::kRandomSampling));
  EXPECT_NE(base, draws(2, 2, 3, 4, RngStream::kRandomSampling));
  EXPECT_NE(base, draws(1ull | 1ull << 40, 2, 3, 4, RngStream::kRandomSampling));  // high seed bits count
  EXPECT_NE(base, draws(1, 3, 3, 4, RngStream::kRandomSampling));
  EXPECT_NE(base, draws(1, 2, 4, 4, RngStream::kRandomSampling));
  EXPECT_NE(base, draws(1, 2, 3, 5, RngStream::kRandomSampling));
  EXPECT_NE(base, draws(1, 2, 3, 4, RngStream::kAdaptiveBase));
  EXPECT_NE(draws(1, 2, 3, 4, RngStream::kAdaptiveBase), draws(1, 2, 3, 4, RngStream::kAdaptiveBudget));
}

// Pearson's chi-square over a range that is not a power of two (modulo bias would show) and a
// range where Lemire's rejection fires for a quarter of the words; the bound is the chi-square
// quantile at 1 - 1e-6, so a correct generator fails it with probability 1e-6.
TEST(MaskedCounterRng, UniformByChiSquare) {
  for (int64_t range : {int64_t{7}, int64_t{3} << 30}) {
    const int cells = 7;
    const int64_t n = 70000;
    const CounterRng rng(99, 1, 2, 3, RngStream::kTest);
    std::vector<double> count(cells, 0.0);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t x = rng.uniform(static_cast<uint64_t>(i), 0, range);
      ASSERT_TRUE(x >= 0 && x < range);
      count[static_cast<size_t>(x / ((range + cells - 1) / cells))] += 1;
    }
    double chi2 = 0.0;
    const double expected = static_cast<double>(n) / cells;
    for (double c : count) chi2 += (c - expected) * (c - expected) / expected;
    const double bound = boost::math::quantile(boost::math::chi_squared(cells - 1), 1.0 - 1e-6);
    EXPECT_LT(chi2, bound) << "range " << range;
  }
}

// ---- random sampling ----

struct SamplingSetup {
  TestCache cache;
  std::vector<float> q;
  int heads;
};

SamplingSetup random_setup(int positions, int heads, int hkv, uint32_t seed) {
  SamplingSetup s{TestCache(positions, hkv, 8, 5, true), testing::random_query(heads, 8, seed + 1), heads};
  s.cache.fill_random(seed);
  return s;
}

std::vector<HeadSelection> run(const MaskedConfig& c, const SamplingSetup& s, int t, uint64_t seed,
                               int layer = 0, SelectionScratch* scratch = nullptr) {
  SelectionScratch local;
  std::vector<HeadSelection> out;
  select_keys(c, QueryContext{layer, t, seed, 0.35f}, s.q.data(), s.heads, s.cache.view(),
              scratch ? *scratch : local, &out);
  return out;
}

TEST(MaskedSampling, SameSeedGivesIdenticalSelections) {
  const SamplingSetup s = random_setup(200, 4, 2, 1);
  for (
      const std::string& m :
      {std::string(
           R"({"type":"sink","sink_size":4},{"type":"local","window_size":4},{"type":"random_sampling","sampling_rate":0.2})"),
       std::string(
           R"({"type":"sink","sink_size":4},{"type":"oracle_top_k","heavy_size":0.05},)"
           R"({"type":"adaptive_sampling","base_rate_sampling":0.1,"epsilon":0.2,"delta":0.2,"init_offset":4,"local_offset":4})")}) {
    const MaskedConfig c = config_of(list(m));
    SelectionScratch shared;
    run(c, s, 150, 5, 0, &shared);  // the scratch's history must not matter
    const auto a = run(c, s, 199, 42, 3, &shared);
    const auto b = run(c, s, 199, 42, 3);
    for (int h = 0; h < 4; ++h) {
      EXPECT_EQ(a[h].keys, b[h].keys);
      EXPECT_EQ(a[h].weights, b[h].weights);
    }
    const auto other_seed = run(c, s, 199, 43, 3);
    EXPECT_NE(a[0].keys, other_seed[0].keys);
  }
}

TEST(MaskedSampling, DrawsDifferAcrossLayerHeadAndPosition) {
  // q = 0 and one KV head: every head sees the same scores, so only the draws can differ.
  SamplingSetup s = random_setup(128, 2, 1, 2);
  std::fill(s.q.begin(), s.q.end(), 0.0f);
  const MaskedConfig c = config_of(list(R"({"type":"random_sampling","sampling_rate":0.25})"));
  const auto a = run(c, s, 127, 7, 0);
  EXPECT_NE(a[0].keys, a[1].keys);                     // head
  EXPECT_NE(a[0].keys, run(c, s, 127, 7, 1)[0].keys);  // layer
  EXPECT_NE(a[0].keys, run(c, s, 126, 7, 0)[0].keys);  // position
}

TEST(MaskedSampling, RandomWritesSamplingRateOnDrawnKeysAndClampsOverDeterministicOnes) {
  const SamplingSetup s = random_setup(100, 2, 1, 3);
  const MaskedConfig c =
      config_of(list(R"({"type":"sink","sink_size":3},{"type":"random_sampling","sampling_rate":0.3})"));
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const auto sel = run(c, s, 99, seed);
    for (const HeadSelection& h : sel) {
      ASSERT_FALSE(h.dense);
      int sampled = 0;
      for (size_t i = 0; i < h.keys.size(); ++i) {
        if (h.keys[i] < 3) {
          EXPECT_EQ(h.weights[i], 1.0f);  // clamp(1 + 0.3) = 1
        } else {
          EXPECT_EQ(h.weights[i], 0.3f);
          ++sampled;
        }
      }
      EXPECT_LE(sampled, 30);  // int(0.3 * 100) draws, duplicates collapse
      EXPECT_GE(sampled, 15);
    }
  }
}

// With replacement, the number of distinct keys among n draws over sk has mean
// sk * (1 - (1 - 1/sk)^n) (the reference's slight bias, Part 2 §5.1). Bound: 5 standard errors
// of the empirical mean over independent seeds (CLT; false failure ~6e-7).
TEST(MaskedSampling, DistinctDrawCountMatchesWithReplacementExpectation) {
  const SamplingSetup s = random_setup(64, 2, 2, 4);
  const MaskedConfig c = config_of(list(R"({"type":"random_sampling","sampling_rate":0.25})"));
  const int seeds = 3000;
  double sum = 0, sum2 = 0;
  int samples = 0;
  for (int seed = 0; seed < seeds; ++seed)
    for (const HeadSelection& h : run(c, s, 63, static_cast<uint64_t>(seed))) {
      const double k = static_cast<double>(h.keys.size());
      sum += k;
      sum2 += k * k;
      ++samples;
    }
  const double mean = sum / samples;
  const double var = (sum2 - samples * mean * mean) / (samples - 1);
  const double expected = 64.0 * (1.0 - std::pow(63.0 / 64.0, 16));
  EXPECT_LE(std::abs(mean - expected), 5.0 * std::sqrt(var / samples)) << mean << " vs " << expected;
}

// ---- the estimator's mean ----
//
// With q = 0 every key has the same score, and a sampler alone gives all its keys the same
// weight, so the estimator is the mean of v over the distinct drawn keys. Draws are i.i.d.
// uniform, so given its size that set is a uniformly random subset and the estimator is exactly
// unbiased for the dense output (the mean of v over the range). Over N seeds the empirical mean
// is within 5 of its standard errors of the dense output (CLT; per coordinate false failure
// 5.7e-7). v varies with the position, so draws biased toward some positions fail the bound
// (checked below with a deliberately biased sampler).
struct MeanCheck {
  double worst_z = 0;  // max over coordinates of |mean - dense| / SE
};

MeanCheck estimator_mean(
    const MaskedConfig& c, int positions, int seeds,
    const std::function<void(int, RngStream, int64_t, int64_t, int64_t, int32_t*)>& override_draws) {
  const int heads = 2, d = 4, t = positions - 1;
  TestCache cache(positions, 1, d, 8, true);
  for (int j = 0; j < positions; ++j) {
    float* v = cache.value_mut(j, 0);
    v[0] = static_cast<float>(j) / positions;
    v[1] = static_cast<float>(j % 7) / 6.0f;
    v[2] = std::cos(static_cast<float>(j));
    v[3] = j < positions / 2 ? 1.0f : -1.0f;
  }
  const std::vector<float> q(static_cast<size_t>(heads) * d, 0.0f);
  const QueryContext ctx0{0, t, 0, 0.5f};
  std::vector<float> dense(static_cast<size_t>(heads) * d), out(dense.size());
  dense_attention_reference(q.data(), heads, cache.view(), ctx0, dense.data());
  std::vector<double> sum(dense.size(), 0.0), sum2(dense.size(), 0.0);
  SelectionScratch scratch;
  scratch.draw_override = override_draws;
  std::vector<HeadSelection> sel;
  for (int seed = 0; seed < seeds; ++seed) {
    const QueryContext ctx{0, t, static_cast<uint64_t>(seed) * 7919 + 1, 0.5f};
    select_keys(c, ctx, q.data(), heads, cache.view(), scratch, &sel);
    EXPECT_FALSE(sel[0].dense);
    masked_attention_reference(q.data(), heads, cache.view(), ctx, sel, out.data());
    for (size_t i = 0; i < out.size(); ++i) {
      sum[i] += out[i];
      sum2[i] += static_cast<double>(out[i]) * out[i];
    }
  }
  MeanCheck r;
  for (size_t i = 0; i < out.size(); ++i) {
    const double mean = sum[i] / seeds;
    const double var = (sum2[i] - seeds * mean * mean) / (seeds - 1);
    const double se = std::sqrt(std::max(var, 1e-300) / seeds);
    r.worst_z = std::max(r.worst_z, std::abs(mean - dense[i]) / se);
  }
  return r;
}

TEST(MaskedSampling, RandomSamplingEstimatorMeanApproachesDense) {
  const MaskedConfig c = config_of(list(R"({"type":"random_sampling","sampling_rate":0.1})"));
  EXPECT_LE(estimator_mean(c, 96, 4000, nullptr).worst_z, 5.0);
}

TEST(MaskedSampling, AdaptiveSamplingEstimatorMeanApproachesDense) {
  const MaskedConfig c = config_of(list(
      R"({"type":"adaptive_sampling","base_rate_sampling":0.08,"epsilon":0.1,"delta":0.1,"init_offset":0,"local_offset":0})"));
  EXPECT_LE(estimator_mean(c, 96, 4000, nullptr).worst_z, 5.0);
}

TEST(MaskedSampling, MeanCheckDetectsBiasedDraws) {  // the statistic above has power
  const MaskedConfig c = config_of(list(R"({"type":"random_sampling","sampling_rate":0.1})"));
  auto low_heavy = [](int head, RngStream stream, int64_t count, int64_t lo, int64_t hi, int32_t* out) {
    static uint64_t state = 1;
    for (int64_t i = 0; i < count; ++i) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      const uint64_t u = state >> 33;
      // a uniform draw 90% of the time, otherwise from the lower half
      const int64_t span = (u % 10 == 0) ? (hi - lo) / 2 : (hi - lo);
      out[i] = static_cast<int32_t>(lo + static_cast<int64_t>((u / 10) % static_cast<uint64_t>(span)));
    }
  };
  EXPECT_GT(estimator_mean(c, 96, 4000, low_heavy).worst_z, 5.0);
}

// ---- adaptive sampling ----

MaskerSpec adaptive_spec(const std::string& base, double eps, double delta, int init, int local) {
  const MaskedConfig c =
      config_of(list(R"({"type":"adaptive_sampling","base_rate_sampling":)" + base + R"(,"epsilon":)" +
                     std::to_string(eps) + R"(,"delta":)" + std::to_string(delta) + R"(,"init_offset":)" +
                     std::to_string(init) + R"(,"local_offset":)" + std::to_string(local) + "}"));
  return c.maskers.at(0);
}

TEST(MaskedAdaptive, BudgetEqualsTheFormulaOnInjectedSamples) {
  // sk = 20, start 2, end 18: R = 16.
  std::vector<float> e(20, 0.2f);
  {  // base 0.25 -> nb = 4; e over the draws {3, 5, 5, 9} = 0.5 0.1 0.1 0.9
    e[3] = 0.5f, e[5] = 0.1f, e[9] = 0.9f;
    const MaskerSpec spec = adaptive_spec("0.25", 0.25, 0.25, 2, 2);
    const std::vector<int32_t> base = {3, 5, 5, 9};
    // sigma = sample std (n - 1) of the 4 values: mean 0.4, sum of squares 0.44
    const double sigma = std::sqrt(0.44 / 3.0);
    // D-hat = D_static + distinct keys once: (0.5 + 0.1 + 0.9) / (nb/R + 1e-6)
    const double d_hat = 0.5 + 1.5 / (4.0 / 16.0 + 1e-6);
    const double z = 0.6744897501960817;  // norm.ppf(0.75)
    const double raw = std::pow(z * sigma * 16.0 / (0.25 * d_hat), 2.0);
    ASSERT_NEAR(raw, 6.4687, 1e-3);  // long(clamp(raw, 1, 16)) = 6, clamp(6, nb = 4, 16) = 6
    const AdaptiveBudget b = adaptive_budget(spec, e, 0.5, 2, 18, base);
    EXPECT_EQ(b.budget, 6);
    EXPECT_EQ(b.probability, 0.375);
  }
  {  // int base 3 -> nb = 3; draws {4, 4, 6}: 0.05 0.05 0.95; tiny D: the budget saturates at R
    e[4] = 0.05f, e[6] = 0.95f;
    const MaskerSpec spec = adaptive_spec("3", 0.1, 0.05, 2, 2);
    const double sigma = std::sqrt((0.09 + 0.09 + 0.36) / 2.0);
    const double d_hat = 0.01 + 1.0 / (3.0 / 16.0 + 1e-6);
    const double raw = std::pow(1.6448536269514722 * sigma * 16.0 / (0.1 * d_hat), 2.0);
    ASSERT_GT(raw, 16.0);
    const AdaptiveBudget b = adaptive_budget(spec, e, 0.01, 2, 18, std::vector<int32_t>{4, 4, 6});
    EXPECT_EQ(b.budget, 16);
    EXPECT_EQ(b.probability, 1.0);
  }
  {  // base 0.05 -> nb = max(2, int(0.8)) = 2; equal values: sigma clamps to 1e-8, budget to nb
    e[2] = e[3] = 0.7f;
    const MaskerSpec spec = adaptive_spec("0.05", 0.25, 0.25, 2, 2);
    const AdaptiveBudget b = adaptive_budget(spec, e, 3.0, 2, 18, std::vector<int32_t>{2, 3});
    EXPECT_EQ(b.budget, 2);
    EXPECT_EQ(b.probability, static_cast<double>(0.125f));
  }
}

TEST(MaskedAdaptive, SelectionUsesTheBudgetOnInjectedBaseSample) {
  // Keys (s_j, 0, 0, 0) and q = (1, 0, 0, 0) make the scores exact; scale 0.5 keeps them exact.
  const int n = 20;
  std::vector<float> s(n);
  for (int j = 0; j < n; ++j) s[j] = static_cast<float>((j * 7) % 11) - 5.0f;
  TestCache cache(n, 1, 4, 3, true);
  for (int j = 0; j < n; ++j) cache.key_mut(j, 0)[0] = s[j];
  const std::vector<float> q = {1, 0, 0, 0};
  const MaskedConfig c =
      config_of(list(R"({"type":"sink","sink_size":2},{"type":"local","window_size":2},)"
                     R"({"type":"adaptive_sampling","base_rate_sampling":0.25,"epsilon":0.05,)"
                     R"("delta":0.05,"init_offset":2,"local_offset":2})"));
  int64_t budget_draws = -1;
  SelectionScratch scratch;
  scratch.draw_override = [&](int, RngStream stream, int64_t count, int64_t lo, int64_t hi, int32_t* out) {
    EXPECT_EQ(lo, 2);
    EXPECT_EQ(hi, 18);
    if (stream == RngStream::kAdaptiveBase) {
      ASSERT_EQ(count, 4);
      const int32_t base[4] = {3, 5, 5, 9};
      std::copy(base, base + 4, out);
    } else {
      ASSERT_EQ(stream, RngStream::kAdaptiveBudget);
      budget_draws = count;
      for (int64_t i = 0; i < count; ++i) out[i] = static_cast<int32_t>(lo + (i * 5) % (hi - lo));
    }
  };
  std::vector<HeadSelection> sel;
  select_keys(c, QueryContext{0, n - 1, 1, 0.5f}, q.data(), 1, cache.view(), scratch, &sel);

  // The same budget from the exposed formula: e = exp(0.5 s - max), D_static over the sink and
  // local keys (weight 1) in the order they were written.
  std::vector<float> e(n);
  float mx = -1e30f;
  for (int j = 0; j < n; ++j) mx = std::max(mx, s[j] * 0.5f);
  for (int j = 0; j < n; ++j) e[j] = std::exp(s[j] * 0.5f - mx);
  double d_static = 0;
  for (int j : {0, 1, 18, 19}) d_static += e[j] * (1.0f / (1.0f + 1e-6f));
  const AdaptiveBudget want =
      adaptive_budget(c.maskers[2], e, static_cast<float>(d_static), 2, 18, std::vector<int32_t>{3, 5, 5, 9});
  EXPECT_EQ(budget_draws, want.budget);
  ASSERT_FALSE(sel[0].dense);
  std::set<int32_t> sampled;
  for (int64_t i = 0; i < want.budget; ++i) sampled.insert(static_cast<int32_t>(2 + (i * 5) % 16));
  size_t expected_keys = 4 + sampled.size();
  EXPECT_EQ(sel[0].keys.size(), expected_keys);
  for (size_t i = 0; i < sel[0].keys.size(); ++i) {
    const int32_t j = sel[0].keys[i];
    if (j < 2 || j >= 18) {
      EXPECT_EQ(sel[0].weights[i], 1.0f);
    } else {
      EXPECT_TRUE(sampled.count(j)) << j;
      EXPECT_EQ(sel[0].weights[i], static_cast<float>(want.probability));
    }
  }
}

TEST(MaskedAdaptive, FullWhenTheRangeIsShorterThanTwo) {
  const SamplingSetup s = random_setup(40, 1, 1, 5);
  const MaskedConfig c = config_of(list(
      R"({"type":"adaptive_sampling","base_rate_sampling":0.1,"epsilon":0.2,"delta":0.2,"init_offset":4,"local_offset":4})"));
  EXPECT_TRUE(run(c, s, 8, 1)[0].dense);   // sk = 9: R = 1
  EXPECT_FALSE(run(c, s, 9, 1)[0].dense);  // sk = 10: R = 2
  const auto two = run(c, s, 9, 1);
  for (int key : two[0].keys) EXPECT_TRUE(key == 4 || key == 5);
  const MaskedConfig halves = config_of(list(
      R"({"type":"adaptive_sampling","base_rate_sampling":0.1,"epsilon":0.2,"delta":0.2,"init_offset":0.5,"local_offset":0.5})"));
  for (int t : {5, 6, 39}) EXPECT_TRUE(run(halves, s, t, 1)[0].dense);  // R = sk - 2 int(sk / 2) < 2
  // a FULL adaptive discards the sink before it
  const MaskedConfig after_sink = config_of(list(
      R"({"type":"sink","sink_size":1},{"type":"adaptive_sampling","base_rate_sampling":2,"epsilon":0.2,"delta":0.2,"init_offset":4,"local_offset":4})"));
  EXPECT_TRUE(run(after_sink, s, 8, 1)[0].dense);
}

}  // namespace
}  // namespace hotswap::masked
