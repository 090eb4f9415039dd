// The summarising maskers' per-sequence caches (KeySummaries): built incrementally — a prompt
// in chunks, then one key per decode step — they equal the caches recomputed from scratch at
// that step, and select the same keys; the summary pool returns to all-free after random
// sequences of writes, preemptions and frees.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>
#include <vector>

#include "attention/masked/hash_functions.h"
#include "attention/masked/key_summaries.h"
#include "attention/masked/select_keys.h"
#include "masked_test_util.h"

namespace hotswap::masked {
namespace {

using testing::config_of;
using testing::random_query;
using testing::TestCache;

constexpr int kLayers = 2, kHeads = 4, kKvHeads = 2, kDim = 8;

std::shared_ptr<HashAttentionAdapter> random_hat(uint32_t seed, int bits) {
  std::mt19937 rng(seed);
  auto linear = [&](int d_in, int d_out) { return testing::random_hash_linear(kHeads, d_in, d_out, 0.5f, rng); };
  auto hat = std::make_shared<HashAttentionAdapter>();
  hat->num_layers = kLayers;
  hat->num_heads = kHeads;
  hat->head_dim = kDim;
  hat->bits = bits;
  hat->activation = HashActivation::kSilu;
  for (int l = 0; l < kLayers; ++l)
    hat->layers.push_back({{linear(kDim, 12), linear(12, bits)}, {linear(kDim, 12), linear(12, bits)}});
  return hat;
}

const char* kConfigs[] = {
    R"({"maskers":[{"type":"sink","sink_size":4},{"type":"local","window_size":8},{"type":"hashattention_top_k","heavy_size":0.05}]})",
    R"({"maskers":[{"type":"sink","sink_size":4},{"type":"local","window_size":8},{"type":"magic_pig","lsh_l":4,"lsh_k":3}]})",
    R"({"maskers":[{"type":"quest_top_k","heavy_size":0.1,"page_size":8}]})",
    R"({"maskers":[{"type":"local","window_size":300},{"type":"quest_top_k","heavy_size":24,"page_size":16,"label_bits":6},{"type":"magic_pig","lsh_l":2,"lsh_k":2,"center":false}]})",
};

struct Fixture {
  SummaryPool pool;
  std::shared_ptr<HashAttentionAdapter> hat = random_hat(11, 24);
  SummaryShape shape{kLayers, kHeads, kKvHeads, kDim};
  std::unique_ptr<KeySummaries> make(const MaskedConfig& c) {
    return std::make_unique<KeySummaries>(c, shape, pool, c.find(MaskerType::kHashAttentionTopK) ? hat : nullptr, nullptr);
  }
};

auto reached(const MaskedConfig& c) {
  return [&c](size_t masker, int64_t sk) { return masker_reached(c, masker, sk); };
}

// Every summary of `layer` for keys [0, sk) equal in a and b.
void expect_same_summaries(const MaskedConfig& c, const KeySummaries& a, const KeySummaries& b, int layer, int64_t sk) {
  for (size_t i = 0; i < c.maskers.size(); ++i) {
    const MaskerSpec& m = c.maskers[i];
    if (m.type == MaskerType::kHashAttentionTopK) {
      for (int64_t j = 0; j < sk; ++j)
        for (int h = 0; h < kHeads; ++h)
          ASSERT_EQ(a.hat_signature(i, layer, j, h), b.hat_signature(i, layer, j, h)) << "key " << j << " head " << h;
    } else if (m.type == MaskerType::kMagicPig) {
      const auto &pa = a.pig(i, layer), &pb = b.pig(i, layer);
      ASSERT_EQ(pa.initialised, pb.initialised);
      if (!pa.initialised) continue;
      ASSERT_EQ(pa.mean, pb.mean);
      for (int64_t j = 0; j < sk; ++j) {
        ASSERT_EQ(pa.run_max[static_cast<size_t>(j)], pb.run_max[static_cast<size_t>(j)]) << "key " << j;
        for (int g = 0; g < kKvHeads; ++g)
          for (int t = 0; t < m.lsh_l; ++t)
            ASSERT_EQ(a.pig_code(i, layer, j, g, t), b.pig_code(i, layer, j, g, t)) << "key " << j << " table " << t;
      }
    } else if (m.type == MaskerType::kQuestTopK) {
      for (int64_t p = 0; p < (sk + m.page_size - 1) / m.page_size; ++p)
        for (int g = 0; g < kKvHeads; ++g)
          for (int c2 = 0; c2 < 2 * kDim; ++c2)
            ASSERT_EQ(a.quest_bounds(i, layer, p, g)[c2], b.quest_bounds(i, layer, p, g)[c2]) << "page " << p;
    }
  }
}

TEST(KeySummaries, IncrementalEqualsRecomputedFromScratchUpTo4096Keys) {
  constexpr int kPositions = 4096, kPrompt = 700;
  TestCache cache(kPositions, kKvHeads, kDim, 16, /*shuffled=*/true);
  cache.fill_random(5);
  const PagedKvView kv = cache.view();
  for (const char* text : kConfigs) {
    SCOPED_TRACE(text);
    Fixture f;
    const MaskedConfig c = config_of(text);
    auto incremental = f.make(c);
    std::mt19937 rng(3);
    // The prompt in random chunks (written keys only: it is attended densely), then decode.
    int written = 0;
    while (written < kPrompt) {
      const int end = std::min(kPrompt, written + 1 + static_cast<int>(rng() % 200));
      for (int l = 0; l < kLayers; ++l) incremental->write_keys(l, kv, end);
      written = end;
    }
    SelectionScratch scratch;
    std::vector<HeadSelection> got, want;
    for (int t = kPrompt; t < kPositions; ++t) {
      for (int l = 0; l < kLayers; ++l) {
        incremental->write_keys(l, kv, t + 1);
        incremental->prepare_queries(l, kv, t, t, reached(c));
      }
      if (!(t < kPrompt + 300 || t % 61 == 0 || t == kPositions - 1)) continue;
      // From scratch: every key at once, the first decode position as MagicPig's first query.
      auto scratch_state = f.make(c);
      for (int l = 0; l < kLayers; ++l) {
        scratch_state->write_keys(l, kv, t + 1);
        scratch_state->prepare_queries(l, kv, kPrompt, t, reached(c));
        expect_same_summaries(c, *incremental, *scratch_state, l, t + 1);
        if (::testing::Test::HasFatalFailure()) return;
      }
      const std::vector<float> q = random_query(kHeads, kDim, static_cast<uint32_t>(t));
      QueryContext ctx{1, t, 9, 0.35f, incremental.get()};
      select_keys(c, ctx, q.data(), kHeads, kv, scratch, &got);
      ctx.summaries = scratch_state.get();
      select_keys(c, ctx, q.data(), kHeads, kv, scratch, &want);
      for (int h = 0; h < kHeads; ++h) {
        ASSERT_EQ(got[h].dense, want[h].dense) << "t " << t;
        ASSERT_EQ(got[h].keys, want[h].keys) << "t " << t << " head " << h;
        ASSERT_EQ(got[h].weights, want[h].weights) << "t " << t << " head " << h;
      }
    }
    EXPECT_GT(f.pool.num_pages_in_use(), 0);
    incremental.reset();
    EXPECT_EQ(f.pool.num_pages_in_use(), 0);
  }
}

// summary_bytes() is what the scheduler charges to the KV pool before a step: the pages the
// summaries take once every key up to n is summarised.
TEST(KeySummaries, SummaryBytesAreThePagesTheSummariesTake) {
  constexpr int kPositions = 4096;
  TestCache cache(kPositions, kKvHeads, kDim, 16, /*shuffled=*/true);
  cache.fill_random(6);
  const PagedKvView kv = cache.view();
  for (const char* text : kConfigs) {
    SCOPED_TRACE(text);
    Fixture f;
    const MaskedConfig c = config_of(text);
    for (int n : {100, 257, 1000, kPositions}) {
      auto state = f.make(c);
      for (int l = 0; l < kLayers; ++l) {
        state->write_keys(l, kv, n);
        state->prepare_queries(l, kv, n - 1, n - 1, reached(c));
      }
      // At most; exactly once every masker runs (a local window of 300 keeps magic_pig idle
      // below 300 keys).
      if (n > 300)
        EXPECT_EQ(f.pool.bytes_in_use(), summary_bytes(c, f.shape, f.hat->bits, n)) << n << " keys";
      else
        EXPECT_LE(f.pool.bytes_in_use(), summary_bytes(c, f.shape, f.hat->bits, n)) << n << " keys";
    }
    EXPECT_EQ(f.pool.num_pages_in_use(), 0);
  }
}

TEST(KeySummaries, AChunkOfQueriesSeesOnlyItsOwnPrefix) {
  // A multi-query chunk brings the caches to its last key first; each query must still see
  // the bounds and the running max of keys 0..t only, as when decoded one by one.
  TestCache cache(600, kKvHeads, kDim, 16);
  cache.fill_random(8);
  const PagedKvView kv = cache.view();
  for (const char* text : kConfigs) {
    SCOPED_TRACE(text);
    Fixture f;
    const MaskedConfig c = config_of(text);
    auto one_by_one = f.make(c), chunked = f.make(c);
    for (int l = 0; l < kLayers; ++l) {
      one_by_one->write_keys(l, kv, 400);
      chunked->write_keys(l, kv, 600);
      chunked->prepare_queries(l, kv, 400, 599, reached(c));
    }
    SelectionScratch scratch;
    std::vector<HeadSelection> a, b;
    for (int t = 400; t < 600; ++t) {
      one_by_one->write_keys(0, kv, t + 1);
      one_by_one->prepare_queries(0, kv, t, t, reached(c));
      const std::vector<float> q = random_query(kHeads, kDim, static_cast<uint32_t>(t) + 77);
      QueryContext ctx{0, t, 1, 0.35f, one_by_one.get()};
      select_keys(c, ctx, q.data(), kHeads, kv, scratch, &a);
      ctx.summaries = chunked.get();
      select_keys(c, ctx, q.data(), kHeads, kv, scratch, &b);
      for (int h = 0; h < kHeads; ++h) {
        ASSERT_EQ(a[h].keys, b[h].keys) << "t " << t << " head " << h;
        ASSERT_EQ(a[h].weights, b[h].weights) << "t " << t << " head " << h;
      }
    }
  }
}

TEST(KeySummaries, RandomOperationsReturnThePoolToAllFree) {
  TestCache cache(1500, kKvHeads, kDim, 16);
  cache.fill_random(2);
  const PagedKvView kv = cache.view();
  Fixture f;
  std::vector<MaskedConfig> configs;
  for (const char* text : kConfigs) configs.push_back(config_of(text));
  struct Live {
    std::unique_ptr<KeySummaries> s;
    const MaskedConfig* c;
    int length = 0;
  };
  std::map<int, Live> live;
  std::mt19937 rng(17);
  int next_id = 0;
  for (int op = 0; op < 10000; ++op) {
    const uint32_t r = rng() % 100;
    if (live.empty() || r < 15) {  // a new sequence
      const MaskedConfig* c = &configs[rng() % configs.size()];
      live[next_id++] = Live{f.make(*c), c, 0};
    } else {
      auto it = std::next(live.begin(), static_cast<long>(rng() % live.size()));
      Live& s = it->second;
      if (r < 30) {
        live.erase(it);  // finished
      } else if (r < 38) {
        s.s->reset();  // preempted
        s.length = 0;
      } else if (s.length < 1400) {  // a step: a chunk or one token
        const int end = s.length + (rng() % 4 == 0 ? 1 + static_cast<int>(rng() % 90) : 1);
        const int l = static_cast<int>(rng() % kLayers);
        s.s->write_keys(l, kv, end);
        s.s->prepare_queries(l, kv, end - 1, end - 1, reached(*s.c));
        s.length = end;
      }
    }
    int64_t held = 0;
    for (const auto& [id, s] : live) held += s.s->num_pages();
    ASSERT_EQ(f.pool.num_pages_in_use(), held) << "op " << op;
    ASSERT_EQ(f.pool.bytes_in_use(), held * static_cast<int64_t>(SummaryPool::kPageBytes));
  }
  EXPECT_GT(f.pool.num_pages_created(), 0);
  live.clear();
  EXPECT_EQ(f.pool.num_pages_in_use(), 0);
}

}  // namespace
}  // namespace hotswap::masked
