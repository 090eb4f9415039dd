// select_keys for hashattention_top_k and quest_top_k (the vector selection paths: Hamming
// bytes and a threshold search, group-wise page scores and a bitwise top-k) against a brute
// force over every key and page — scores from hash_signature / quest_bound, ranked by a
// sort (score descending, ties to the lower key or page) — at head_dim 64 and GQA, with
// every ISA the CPU has.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include "attention/masked/hash_functions.h"
#include "attention/masked/key_summaries.h"
#include "attention/masked/select_keys.h"
#include "kernels/isa.h"
#include "masked_test_util.h"

namespace hotswap::masked {
namespace {

using testing::config_of;
using testing::random_query;
using testing::TestCache;

constexpr int kHeads = 8, kKvHeads = 2, kDim = 64, kBits = 32;

std::shared_ptr<HashAttentionAdapter> random_hat() {
  std::mt19937 rng(17);
  auto linear = [&](int d_in, int d_out) { return testing::random_hash_linear(kHeads, d_in, d_out, 0.3f, rng); };
  auto hat = std::make_shared<HashAttentionAdapter>();
  hat->num_layers = 1;
  hat->num_heads = kHeads;
  hat->head_dim = kDim;
  hat->bits = kBits;
  hat->activation = HashActivation::kSilu;
  hat->layers.push_back({{linear(kDim, 32), linear(32, kBits)}, {linear(kDim, 32), linear(32, kBits)}});
  return hat;
}

// The brute force of one head: sink, local, then the masker's top-k by a full sort.
std::vector<int32_t> brute_keys(const MaskedConfig& c, const KeySummaries& ks, const PagedKvView& kv,
                                const HashAttentionAdapter& hat, const float* q, int h, int t) {
  const int64_t sk = t + 1;
  std::set<int32_t> active;
  for (size_t i = 0; i < c.maskers.size(); ++i) {
    const MaskerSpec& m = c.maskers[i];
    if (m.type == MaskerType::kSink) {
      for (int64_t j = 0; j < m.size.resolve(sk); ++j) active.insert(static_cast<int32_t>(j));
    } else if (m.type == MaskerType::kLocal) {
      for (int64_t j = t - m.size.resolve(sk) + 1; j <= t; ++j) active.insert(static_cast<int32_t>(j));
    } else if (m.type == MaskerType::kHashAttentionTopK) {
      std::vector<float> scratch;
      const uint64_t qs = hash_signature(hat.layers[0].query, hat.activation, h, q, scratch);
      std::vector<std::pair<int, int32_t>> ranked;  // (-score, key): inactive keys only
      for (int32_t j = 0; j < sk; ++j)
        if (!active.count(j)) ranked.push_back({-signature_score(qs, ks.hat_signature(i, 0, j, h), kBits), j});
      std::sort(ranked.begin(), ranked.end());
      const auto k = static_cast<size_t>(std::min<int64_t>(m.size.resolve(sk), static_cast<int64_t>(ranked.size())));
      for (size_t r = 0; r < k; ++r) active.insert(ranked[r].second);
    } else if (m.type == MaskerType::kQuestTopK) {
      const int64_t ps = m.page_size, pages = (sk + ps - 1) / ps;
      const int64_t kp = std::min(pages, std::max<int64_t>(3, m.size.resolve(sk) / ps));
      std::vector<std::pair<float, int64_t>> ranked;
      for (int64_t p = 0; p < pages; ++p) {
        // The page's bounds from its keys up to t (the stored ones may hold later keys).
        std::vector<float> b(2 * kDim);
        for (int64_t j = p * ps; j < std::min(sk, (p + 1) * ps); ++j) {
          const float* key = kv.key(static_cast<int>(j), h / (kHeads / kKvHeads));
          for (int x = 0; x < kDim; ++x) {
            b[x] = j == p * ps ? key[x] : std::min(b[x], key[x]);
            b[kDim + x] = j == p * ps ? key[x] : std::max(b[kDim + x], key[x]);
          }
        }
        const float s = quest_bound(q, b.data(), b.data() + kDim, kDim);
        ranked.push_back({std::isnan(s) ? -std::numeric_limits<float>::infinity() : -s, p});
      }
      std::sort(ranked.begin(), ranked.end());
      for (int64_t r = 0; r < kp; ++r)
        for (int64_t j = ranked[static_cast<size_t>(r)].second * ps; j < std::min(sk, (ranked[static_cast<size_t>(r)].second + 1) * ps); ++j)
          active.insert(static_cast<int32_t>(j));
    }
  }
  return {active.begin(), active.end()};
}

TEST(MaskedSelectBrute, HashAttentionAndQuestSelectWhatAFullSortSelects) {
  // 5,000 keys x 8 heads: the last query spreads its heads over the threads (select_keys'
  // parallel path, with the page scores shared across them).
  constexpr int kPositions = 5000;
  TestCache cache(kPositions, kKvHeads, kDim, 16, /*shuffled=*/true);
  cache.fill_random(23);
  // Ties in plenty: some keys repeated, so that signatures and page bounds collide.
  for (int p = 100; p < 400; ++p)
    for (int g = 0; g < kKvHeads; ++g) std::copy_n(cache.key_mut(p % 37, g), kDim, cache.key_mut(p, g));
  const PagedKvView kv = cache.view();
  const auto hat = random_hat();
  const char* configs[] = {
      R"({"maskers":[{"type":"sink","sink_size":16},{"type":"local","window_size":16},{"type":"hashattention_top_k","heavy_size":0.05}]})",
      R"({"maskers":[{"type":"hashattention_top_k","heavy_size":300}]})",
      R"({"maskers":[{"type":"quest_top_k","heavy_size":256,"page_size":16}]})",
      R"({"maskers":[{"type":"sink","sink_size":8},{"type":"local","window_size":40},{"type":"quest_top_k","heavy_size":0.1,"page_size":32}]})",
      R"({"maskers":[{"type":"quest_top_k","heavy_size":128,"page_size":16},{"type":"hashattention_top_k","heavy_size":0.02}]})",
  };
  const kernels::Isa best = kernels::best_supported_isa();
  for (const char* text : configs) {
    SCOPED_TRACE(text);
    const MaskedConfig c = config_of(text);
    SummaryPool pool;
    KeySummaries ks(c, SummaryShape{1, kHeads, kKvHeads, kDim}, pool, hat, nullptr);
    ks.write_keys(0, kv, kPositions);
    for (kernels::Isa isa : {kernels::Isa::kScalar, best}) {
      kernels::set_active_isa(isa);
      SelectionScratch scratch;
      std::vector<HeadSelection> got;
      for (int t : {700, 1500, kPositions - 1}) {
        const std::vector<float> q = random_query(kHeads, kDim, static_cast<uint32_t>(t));
        QueryContext ctx{0, t, 1, 0.125f, &ks};
        // Keys beyond t are summarised (a multi-query chunk): the last page is rescored.
        select_keys(c, ctx, q.data(), kHeads, kv, scratch, &got);
        for (int h = 0; h < kHeads; ++h) {
          ASSERT_FALSE(got[h].dense);
          EXPECT_EQ(got[h].keys, brute_keys(c, ks, kv, *hat, q.data() + static_cast<size_t>(h) * kDim, h, t))
              << kernels::isa_name(isa) << " t " << t << " head " << h;
          EXPECT_TRUE(std::all_of(got[h].weights.begin(), got[h].weights.end(), [](float w) { return w == 1.0f; }));
        }
      }
    }
    kernels::set_active_isa(best);
  }
}

}  // namespace
}  // namespace hotswap::masked
