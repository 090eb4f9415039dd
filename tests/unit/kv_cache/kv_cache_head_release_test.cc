// Per-KV-head release (DuoAttention deployment of `mixed`): pages outside the streaming window
// keep only the lanes (layer, KV head) of dense heads, in head pages carved from whole blocks.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "kv_cache/head_page_pool.h"
#include "kv_cache/kv_cache_manager.h"
#include "kv_test_util.h"

namespace hotswap {
namespace {

using namespace kv_test;

// kLayers x kKvHeads = 4 lanes: layer 0's KV head 0 and layer 1's KV head 1 dense.
const std::vector<uint8_t> kHalf = {1, 0, 0, 1};

TEST(HeadPagePool, CarvesBlocksTakesFromTheFullestAndGivesEmptyBlocksBack) {
  const KvLayout l = layout(16, 4);
  BlockPool pool(l.num_blocks);
  HeadPagePool heads(pool, l);
  for (int32_t b = 0; b < 4; ++b) {
    for (int lane = 0; lane < 4; ++lane) {
      const int32_t g = heads.page_of(b, lane);
      EXPECT_EQ(heads.block_of(g), b);
      EXPECT_EQ(heads.lane_of(g), lane);
      // Page g is g head-pages past the first layer's base, whatever its layer.
      EXPECT_EQ(static_cast<size_t>(g) * l.head_elems(),
                (lane / kKvHeads) * l.layer_elems() + (static_cast<size_t>(b) * kKvHeads + lane % kKvHeads) * l.head_elems());
    }
  }
  std::vector<int32_t> pages(4);
  const int32_t three = *pool.allocate(), one = *pool.allocate();
  heads.carve(three, std::vector<uint8_t>{1, 1, 1, 0}, pages);  // one free page
  EXPECT_EQ(pages, (std::vector<int32_t>{heads.page_of(three, 0), heads.page_of(three, 1), heads.page_of(three, 2), kNoBlock}));
  std::vector<int32_t> single(4);
  heads.carve(one, std::vector<uint8_t>{1, 0, 0, 0}, single);  // three free pages
  EXPECT_EQ(heads.num_free(), 4);
  EXPECT_EQ(pool.num_used(), 2);
  const int32_t g = heads.take();
  EXPECT_EQ(heads.block_of(g), three);  // the fullest block first
  EXPECT_EQ(heads.num_used_pages(), 5);
  heads.retain(g);
  heads.release(g);
  EXPECT_EQ(heads.ref_count(g), 1);
  heads.release(single[0]);  // `one` has nothing in use: back to the pool
  EXPECT_EQ(pool.num_used(), 1);
  EXPECT_FALSE(heads.is_carved(one));
  for (int32_t p : {pages[0], pages[1], pages[2], g}) heads.release(p);
  EXPECT_EQ(pool.num_used(), 0);
  EXPECT_EQ(heads.num_free(), 0);
  EXPECT_EQ(heads.num_carved_blocks(), 0);
}

// A 100-token prompt in chunks of 32, then decode: the dense lanes keep every position, the
// streaming lanes the windows, and the pool holds about half the eager blocks.
TEST(KvCacheManager, HalfStreamingKvHeadsHoldTheWindowsPlusHalfTheRest) {
  const StreamingRule rule = StreamingRule::from_window(4, 16, 1);
  KvCacheManager kv(layout(16, 160));
  BlockTable t;
  std::vector<int32_t> tokens;
  int pos = 0;
  auto grow = [&](int n) {
    ASSERT_TRUE(kv.prepare_write(t, pos, n).is_ok()) << pos;
    for (int i = 0; i < n; ++i) tokens.push_back(static_cast<int32_t>(1 + (pos + i) % 7));
    write_positions(kv, t, tokens, pos, n);
    pos += n;
    kv.release_invisible(t, rule, kHalf, pos);
  };
  while (pos < 100) grow(std::min(32, 100 - pos));
  int64_t peak = 0;
  for (int step = 0; step < 2000; ++step) {
    grow(1);
    if (::testing::Test::HasFatalFailure()) return;
    peak = std::max(peak, kv.num_used_blocks());
    if (step % 97 == 0 || step == 1999) {
      ASSERT_TRUE(holds_tokens(kv, t, tokens)) << "position " << pos;
      // Every lane still holds what its heads can read: dense lanes all, streaming lanes the window.
      for (int layer = 0; layer < kLayers; ++layer) {
        const PagedKvView view = kv.view(t, layer);
        for (int h = 0; h < kKvHeads; ++h) {
          const bool dense = kHalf[layer * kKvHeads + h] != 0;
          for (int p = 0; p < pos; ++p) {
            if (!dense && !rule.visible(p, pos)) continue;
            const int page = p / 16;
            ASSERT_TRUE(t.blocks[page] != kNoBlock || view.lane_page(page, h) != kNoBlock)
                << "layer " << layer << " head " << h << " lost position " << p << " at " << pos;
          }
        }
      }
    }
  }
  const int64_t eager = kv.blocks_for_positions(pos);
  EXPECT_EQ(eager, 132);
  EXPECT_LE(peak, kv.peak_blocks(rule, pos, 32, 2));
  EXPECT_LE(kv.num_used_blocks(), window_pages(rule, 16) + 1 + (eager + 1) / 2);
  EXPECT_LT(kv.num_used_blocks(), eager * 6 / 10);
  EXPECT_EQ(kv.stats().num_head_pages_used, t.num_lane_pages());
  kv.free(t);
  EXPECT_EQ(kv.num_free_blocks(), kv.num_blocks());
  EXPECT_EQ(kv.stats().num_carved, 0);
}

TEST(KvCacheManager, SplitPagesStayFindableByPrefixAndSharedPagesStayWhole) {
  const StreamingRule rule = StreamingRule::from_window(0, 16, 1);
  KvCacheManager kv(layout(16, 32));
  std::vector<int32_t> tokens(64);
  for (int i = 0; i < 64; ++i) tokens[i] = 3 + i % 5;
  BlockTable a;
  prefill(kv, a, "duo", tokens);
  const std::vector<int32_t> a_blocks = a.blocks;
  EXPECT_EQ(kv.release_invisible(a, rule, kHalf, 64), 3);  // local_start(64) = 49: pages 0-2 split
  ASSERT_TRUE(holds_tokens(kv, a, tokens));
  // The whole pages went back but stay published: a second prompt with the prefix finds them.
  EXPECT_EQ(kv.stats().num_cached_free, 3);
  BlockTable b;
  EXPECT_EQ(prefill(kv, b, "duo", tokens), 48);
  EXPECT_EQ(std::vector<int32_t>(b.blocks.begin(), b.blocks.begin() + 3),
            std::vector<int32_t>(a_blocks.begin(), a_blocks.begin() + 3));
  ASSERT_TRUE(holds_tokens(kv, b, tokens));

  // A page another table holds stays whole (splitting it would hold more): c shares b's pages.
  BlockTable c;
  kv.fork(b, c);
  const int64_t used = kv.num_used_blocks();
  EXPECT_EQ(kv.release_invisible(b, rule, kHalf, 64), 0);
  EXPECT_EQ(kv.num_used_blocks(), used);
  EXPECT_EQ(b.release_cursor, 0);  // looked at again later
  kv.free(c);
  EXPECT_EQ(kv.release_invisible(b, rule, kHalf, 64), 3);  // ours alone now
  ASSERT_TRUE(holds_tokens(kv, b, tokens));
  kv.free(a);
  kv.free(b);
  EXPECT_EQ(kv.num_used_blocks(), 0);
}

TEST(KvCacheManager, ForkSharesHeadPagesUntilBothAreFreed) {
  const StreamingRule rule = StreamingRule::from_window(0, 16, 1);
  KvCacheManager kv(layout(16, 32));
  std::vector<int32_t> tokens(80, 9);
  BlockTable a;
  prefill(kv, a, "duo", tokens);
  kv.release_invisible(a, rule, kHalf, 80);
  ASSERT_GT(a.num_lane_pages(), 0);
  BlockTable child;
  kv.fork(a, child);
  for (int32_t g : a.lane_pages) {
    if (g != kNoBlock) EXPECT_EQ(kv.head_pages().ref_count(g), 2);
  }
  kv.free(a);
  ASSERT_TRUE(holds_tokens(kv, child, tokens));
  kv.free(child);
  EXPECT_EQ(kv.num_used_blocks(), 0);
  EXPECT_EQ(kv.stats().num_carved, 0);
}

TEST(KvCacheManager, PeakBlocksWithKeptLanesCountsTheirCarvedBlocks) {
  KvCacheManager kv(layout(16, 10));
  const StreamingRule rule = StreamingRule::from_window(4, 16, 1);
  const int64_t whole = 1 + 5 + 1;  // as PeakBlocksBoundsWhatASequenceCanEverNeed
  EXPECT_EQ(kv.peak_blocks(rule, 100000, 64, 0), whole);
  EXPECT_EQ(kv.peak_blocks(rule, 100000, 64, 2), whole + ((6250 - whole) * 2 + 3) / 4);
  EXPECT_EQ(kv.peak_blocks(rule, 100000, 64, 4), 6250);  // every lane dense: everything
  EXPECT_EQ(kv.peak_blocks(rule, 20, 64, 2), 2);
}

// Random admits (with prefix matching), extends, forks and frees of eager, streaming and
// half-streaming sequences under a small pool: after every operation each whole block's and
// head page's reference count equals the tables holding it, the pool's used count is the
// whole blocks held plus the carved ones, every held row reads back; at the end all is free.
TEST(KvCacheManager, RandomPerHeadReleaseKeepsCountsExactAndFreesEverything) {
  std::mt19937 rng(7);
  KvCacheManager kv(layout(8, 64));
  const StreamingRule rule = StreamingRule::from_window(4, 12, 1);
  struct Seq {
    BlockTable table;
    std::vector<int32_t> tokens;
    int kind = 0;  // 0 eager, 1 streaming (whole pages), 2 half the KV heads streaming
  };
  const char* ns[] = {"eager", "streaming", "duo"};
  auto release = [&](Seq& s) {
    if (s.kind == 1) kv.release_invisible(s.table, rule, s.table.num_tokens);
    if (s.kind == 2) kv.release_invisible(s.table, rule, kHalf, s.table.num_tokens);
  };
  std::map<int, Seq> live;
  int next_id = 0, splits = 0;
  auto check = [&](int op) {
    std::map<int32_t, int> block_refs, page_refs;
    for (const auto& [id, s] : live) {
      for (int32_t b : s.table.blocks)
        if (b != kNoBlock) ++block_refs[b];
      for (int32_t g : s.table.lane_pages)
        if (g != kNoBlock) ++page_refs[g];
    }
    std::set<int32_t> carved;
    for (const auto& [g, n] : page_refs) {
      ASSERT_EQ(kv.head_pages().ref_count(g), n) << "head page " << g << " op " << op;
      carved.insert(kv.head_pages().block_of(g));
    }
    for (const auto& [b, n] : block_refs) ASSERT_EQ(kv.ref_count(b), n) << "block " << b << " op " << op;
    ASSERT_EQ(kv.stats().num_carved, static_cast<int64_t>(carved.size())) << "op " << op;
    ASSERT_EQ(kv.num_used_blocks(), static_cast<int64_t>(block_refs.size() + carved.size())) << "op " << op;
    for (const auto& [id, s] : live) ASSERT_TRUE(holds_tokens(kv, s.table, s.tokens)) << "seq " << id << " op " << op;
  };
  for (int op = 0; op < 4000; ++op) {
    const int what = static_cast<int>(rng() % 10);
    if (what < 3 || live.empty()) {
      Seq s;
      s.kind = static_cast<int>(rng() % 3);
      s.tokens.assign(static_cast<size_t>(8 + rng() % 3 * 8), static_cast<int32_t>(11 + rng() % 2));
      for (int i = 0, n = 1 + static_cast<int>(rng() % 30); i < n; ++i) s.tokens.push_back(static_cast<int32_t>(20 + rng() % 3));
      const int cached = kv.match_prefix(s.table, ns[s.kind], s.tokens);
      const int n = static_cast<int>(s.tokens.size());
      if (!kv.prepare_write(s.table, cached, n - cached).is_ok()) {
        kv.free(s.table);
      } else {
        write_positions(kv, s.table, s.tokens, cached, n - cached);
        kv.publish_full_blocks(s.table, ns[s.kind], s.tokens);
        release(s);
        live.emplace(next_id++, std::move(s));
      }
    } else {
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      Seq& s = it->second;
      if (what < 7) {
        const int n = rng() % 3 == 0 ? 1 + static_cast<int>(rng() % 10) : 1;
        const int first = s.table.num_tokens;
        if (kv.prepare_write(s.table, first, n).is_ok()) {
          for (int i = 0; i < n; ++i) s.tokens.push_back(static_cast<int32_t>(20 + rng() % 3));
          write_positions(kv, s.table, s.tokens, first, n);
          kv.publish_full_blocks(s.table, ns[s.kind], s.tokens);
          release(s);
        }
      } else if (what < 8) {
        Seq child;
        child.tokens = s.tokens;
        child.kind = s.kind;
        kv.fork(s.table, child.table);
        live.emplace(next_id++, std::move(child));
      } else {
        kv.free(s.table);
        live.erase(it);
      }
    }
    for (const auto& [id, s] : live) splits += s.table.num_lane_pages() > 0;
    check(op);
    if (::testing::Test::HasFatalFailure()) return;
  }
  for (auto& [id, s] : live) kv.free(s.table);
  EXPECT_EQ(kv.num_free_blocks(), kv.num_blocks());
  EXPECT_EQ(kv.stats().num_carved, 0);
  EXPECT_GT(splits, 0);
}

}  // namespace
}  // namespace hotswap
