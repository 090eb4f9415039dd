#include "kv_cache/kv_cache_manager.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "adapters/mixed_adapter_codec.h"
#include "attention/paged/paged_pattern.h"
#include "attention/sequence_attention.h"
#include "core/load_error.h"
#include "engine/attention_choice.h"
#include "kv_test_util.h"

namespace hotswap {
namespace {

using namespace kv_test;

TEST(KvCacheManager, PlanLayoutFromTokensOrBytes) {
  const KvLayout by_tokens = KvCacheManager::plan_layout(2, 2, 4, 16, 100, 0);
  EXPECT_EQ(by_tokens.num_blocks, 7);  // 100 tokens round up to 7 blocks of 16
  const size_t block_bytes = by_tokens.bytes_per_block_all_layers();
  EXPECT_EQ(block_bytes, 2u * 2 * 2 * 16 * 4 * sizeof(float));
  EXPECT_EQ(KvCacheManager::plan_layout(2, 2, 4, 16, 100, 10 * block_bytes + 5).num_blocks, 10);
  try {
    KvCacheManager::plan_layout(2, 2, 4, 16, 100, 100);
    FAIL() << "a capacity below one block must be rejected";
  } catch (const LoadError& e) {
    EXPECT_STREQ(e.what(), "KV cache: kv_cache_bytes 100 holds no block; one block of 16 tokens takes 2048 bytes");
  }
  EXPECT_THROW(KvCacheManager::plan_layout(2, 2, 4, 0, 100, 0), LoadError);
}

TEST(KvCacheManager, PrepareWriteAllocatesAndAFullPoolChangesNothing) {
  KvCacheManager kv(layout(16, 4));
  BlockTable a;
  EXPECT_EQ(kv.blocks_needed(a, 0, 40), 3);
  ASSERT_TRUE(kv.prepare_write(a, 0, 40).is_ok());
  EXPECT_EQ(a.num_tokens, 40);
  EXPECT_EQ(a.num_held(), 3);
  EXPECT_EQ(kv.num_used_blocks(), 3);
  EXPECT_TRUE(kv.can_allocate(1));
  EXPECT_FALSE(kv.can_allocate(2));
  ASSERT_TRUE(kv.prepare_write(a, 40, 8).is_ok());  // fits in the partial block
  EXPECT_EQ(kv.num_used_blocks(), 3);

  const BlockTable before = a;
  const Status s = kv.prepare_write(a, 48, 33);  // needs 3 more blocks, 1 free
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(), "KV cache full: positions [48, 81) need 3 free blocks, 1 of 4 are free");
  EXPECT_EQ(a.blocks, before.blocks);
  EXPECT_EQ(a.num_tokens, 48);
  EXPECT_EQ(kv.num_used_blocks(), 3);

  kv.free(a);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(kv.num_free_blocks(), 4);
  const KvCacheStats stats = kv.stats();
  EXPECT_EQ(stats.num_blocks, 4);
  EXPECT_EQ(stats.num_used, 0);
  EXPECT_EQ(stats.block_size, 16);
}

// Attention state beside the KV (key summaries, compressed caches) holds whole blocks of the
// pool: only ever more, all or nothing, returned with the table, never forked.
TEST(KvCacheManager, StateBytesHoldWholeBlocksUntilTheTableIsFreed) {
  KvCacheManager kv(layout(16, 6));
  const int64_t block = static_cast<int64_t>(kv.layout().bytes_per_block_all_layers());
  BlockTable a;
  ASSERT_TRUE(kv.prepare_write(a, 0, 20).is_ok());  // 2 KV blocks
  ASSERT_TRUE(kv.hold_state_bytes(a, 1).is_ok());
  EXPECT_EQ(a.state_blocks.size(), 1u);
  ASSERT_TRUE(kv.hold_state_bytes(a, 2 * block).is_ok());
  EXPECT_EQ(a.state_blocks.size(), 2u);
  ASSERT_TRUE(kv.hold_state_bytes(a, block).is_ok());  // less than held: nothing given back
  EXPECT_EQ(a.state_blocks.size(), 2u);
  EXPECT_EQ(a.num_held(), 4);
  EXPECT_EQ(kv.num_used_blocks(), 4);

  const Status s = kv.hold_state_bytes(a, 5 * block);  // 3 more, 2 free
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(), "KV cache full: the attention state's " + std::to_string(5 * block) +
                             " bytes need 3 more blocks, 2 of 6 are free");
  EXPECT_EQ(a.state_blocks.size(), 2u);
  EXPECT_EQ(kv.num_used_blocks(), 4);

  BlockTable child;
  kv.fork(a, child);
  EXPECT_TRUE(child.state_blocks.empty());
  EXPECT_EQ(kv.num_used_blocks(), 4);  // the KV blocks are shared, the state blocks are a's
  kv.free(child);
  kv.free(a);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(kv.num_free_blocks(), 6);
}

TEST(KvCacheManager, ForkSharesBlocksAndCopyOnWriteKeepsSequencesApart) {
  KvCacheManager kv(layout(16, 16));
  std::vector<int32_t> prompt(20);
  for (int i = 0; i < 20; ++i) prompt[i] = 7 + i;
  BlockTable parent;
  ASSERT_TRUE(kv.prepare_write(parent, 0, 20).is_ok());
  write_positions(kv, parent, prompt, 0, 20);

  BlockTable child;
  kv.fork(parent, child);
  EXPECT_EQ(child.blocks, parent.blocks);
  EXPECT_EQ(kv.num_used_blocks(), 2);  // nothing copied yet
  EXPECT_EQ(kv.ref_count(parent.blocks[1]), 2);

  // The child writes position 20 into the shared partial block: it gets a copy.
  std::vector<int32_t> child_tokens = prompt, parent_tokens = prompt;
  child_tokens.push_back(100);
  parent_tokens.push_back(200);
  EXPECT_EQ(kv.blocks_needed(child, 20, 1), 1);
  ASSERT_TRUE(kv.prepare_write(child, 20, 1).is_ok());
  EXPECT_NE(child.blocks[1], parent.blocks[1]);
  EXPECT_EQ(child.blocks[0], parent.blocks[0]);  // full block stays shared
  EXPECT_EQ(kv.ref_count(parent.blocks[1]), 1);
  EXPECT_EQ(kv.num_used_blocks(), 3);
  write_positions(kv, child, child_tokens, 20, 1);

  // The parent now owns its block alone: no copy.
  EXPECT_EQ(kv.blocks_needed(parent, 20, 1), 0);
  ASSERT_TRUE(kv.prepare_write(parent, 20, 1).is_ok());
  write_positions(kv, parent, parent_tokens, 20, 1);
  EXPECT_EQ(kv.num_used_blocks(), 3);

  EXPECT_TRUE(holds_tokens(kv, parent, parent_tokens));
  EXPECT_TRUE(holds_tokens(kv, child, child_tokens));  // the copy carried positions 16..19
  kv.free(parent);
  EXPECT_TRUE(holds_tokens(kv, child, child_tokens));
  kv.free(child);
  EXPECT_EQ(kv.num_free_blocks(), 16);
}

TEST(KvCacheManager, RepeatedPromptIsComputedOnceAndSharedInBlockCounts) {
  KvCacheManager kv(layout(16, 32));
  std::vector<int32_t> system(64);
  for (int i = 0; i < 64; ++i) system[i] = 3 + i;
  BlockTable a;
  EXPECT_EQ(prefill(kv, a, "eager", system), 0);
  EXPECT_EQ(kv.num_used_blocks(), 4);
  EXPECT_EQ(kv.stats().num_cached, 4);

  // Same prompt: the first 3 blocks are reused (the last token is always computed).
  BlockTable b;
  EXPECT_EQ(prefill(kv, b, "eager", system), 48);
  EXPECT_EQ(kv.num_used_blocks(), 5);  // one new block, not four
  for (int i = 0; i < 3; ++i) EXPECT_EQ(b.blocks[i], a.blocks[i]);
  EXPECT_EQ(kv.ref_count(a.blocks[0]), 2);
  EXPECT_TRUE(holds_tokens(kv, b, system));

  // Same prompt with a longer tail: all four published blocks are reused.
  std::vector<int32_t> longer = system;
  longer.insert(longer.end(), {9, 9, 9});
  BlockTable c;
  EXPECT_EQ(prefill(kv, c, "eager", longer), 64);
  EXPECT_EQ(kv.num_used_blocks(), 6);

  // Another namespace (attention/adapter pair) never shares.
  BlockTable d;
  EXPECT_EQ(prefill(kv, d, "streaming:sink=8,recent=32,block=16", system), 0);
  EXPECT_EQ(kv.num_used_blocks(), 10);

  // A prompt that differs in block 2 shares blocks 0 and 1 only.
  std::vector<int32_t> diverged = system;
  diverged[40] = 999;
  BlockTable e;
  EXPECT_EQ(prefill(kv, e, "eager", diverged), 32);
  EXPECT_TRUE(holds_tokens(kv, e, diverged));

  // Freed prefix blocks stay findable (and count as free) until their slots are needed.
  for (BlockTable* t : {&a, &b, &c, &d, &e}) kv.free(*t);
  EXPECT_EQ(kv.num_free_blocks(), 32);
  EXPECT_GT(kv.stats().num_cached_free, 0);
  BlockTable f;
  EXPECT_EQ(prefill(kv, f, "eager", system), 48);
  EXPECT_TRUE(holds_tokens(kv, f, system));
  kv.free(f);

  // Filling the pool evicts them: the prompt is then computed again.
  BlockTable big;
  std::vector<int32_t> other(32 * 16, 5);
  ASSERT_TRUE(kv.prepare_write(big, 0, 32 * 16).is_ok());
  EXPECT_EQ(kv.stats().num_cached, 0);
  kv.free(big);
  BlockTable g;
  EXPECT_EQ(prefill(kv, g, "eager", system), 0);
  kv.free(g);
  EXPECT_EQ(kv.num_free_blocks(), 32);
}

SequenceAttention streaming_attention(int sink, int recent, int block) {
  const AttentionChoice c =
      choice_of("{\"impl\":\"streaming\",\"sink_window_size\":" + std::to_string(sink) +
                ",\"recent_window_size\":" + std::to_string(recent) + ",\"block_size\":" + std::to_string(block) + "}");
  return resolve_attention(c, nullptr, ModelShape{1, 2, 2, 4, 8, ""}).value();
}

TEST(KvCacheManager, StreamingGenerationHoldsNoMoreThanTheWindowsPlusOne) {
  for (const auto& [sink, recent, block] : std::vector<std::tuple<int, int, int>>{
           {4, 16, 1}, {8, 32, 16}, {5, 20, 8}, {0, 1, 1}, {16, 64, 64}, {3, 40, 32}}) {
    const SequenceAttention attn = streaming_attention(sink, recent, block);
    ASSERT_TRUE(attn.release_rule.has_value());
    KvCacheManager kv(layout(16, 64));
    BlockTable t;
    // A 100-token prompt in chunks of 32, then 4096 generated tokens, one per step.
    int pos = 0;
    const int prompt = 100;
    while (pos < prompt) {
      const int n = std::min(32, prompt - pos);
      ASSERT_TRUE(kv.prepare_write(t, pos, n).is_ok());
      pos += n;
      kv.release_invisible(t, attn.release_rule, attn.kept_lanes, pos);
    }
    const int64_t bound = window_pages(rule_of(attn), 16) + 1;
    int64_t peak = 0;
    for (int step = 0; step < 4096; ++step, ++pos) {
      ASSERT_TRUE(kv.prepare_write(t, pos, 1).is_ok()) << "step " << step;
      peak = std::max<int64_t>(peak, t.num_held());
      ASSERT_LE(t.num_held(), bound) << "S=" << sink << " R=" << recent << " B=" << block << " at position " << pos;
      ASSERT_EQ(kv.num_used_blocks(), t.num_held());
      // Everything the query at pos can see is still held.
      for (int p = 0; p <= pos; ++p) {
        if (rule_of(attn).visible(p, pos)) {
          ASSERT_NE(t.blocks[p / 16], kNoBlock) << "released visible position " << p;
        }
      }
      kv.release_invisible(t, attn.release_rule, attn.kept_lanes, pos + 1);
    }
    EXPECT_LE(peak, kv.peak_blocks(attn.release_rule, pos, 1));
    EXPECT_LE(kv.peak_blocks(attn.release_rule, prompt + 4096, 32), bound + 2);
    kv.free(t);
    EXPECT_EQ(kv.num_free_blocks(), 64);
  }
}

TEST(KvCacheManager, MixedReleasesPerKvHeadAndWholePagesWhenNoHeadIsDense) {
  const ModelShape shape{2, 2, 2, 4, 8, ""};
  auto parse = [&](const std::string& l0, const std::string& l1) {
    const std::string doc = "{\"sink_window_size\":4,\"recent_window_size\":16,\"block_size\":1,"
                            "\"model.layers.0.self_attn.adapter\":" + l0 +
                            ",\"model.layers.1.self_attn.adapter\":" + l1 + "}";
    return parse_mixed_adapter(doc, shape, "m").value();
  };
  AttentionChoice choice = choice_of("mixed");
  // Layer 0's KV head 1 is dense: only its lane keeps every position (per-KV-head release).
  const SequenceAttention one_dense = resolve_attention(choice, parse("[0, 0.3]", "[0, 0]"), shape).value();
  EXPECT_TRUE(one_dense.release_rule);
  EXPECT_EQ(one_dense.kept_lanes, (std::vector<uint8_t>{0, 1, 0, 0}));
  const SequenceAttention none_dense = resolve_attention(choice, parse("[0, 0]", "[0, 0]"), shape).value();
  EXPECT_TRUE(none_dense.release_rule);
  EXPECT_TRUE(none_dense.kept_lanes.empty());  // whole pages
  EXPECT_FALSE(resolve_attention(choice, parse("[1, 0.3]", "[0.1, 1]"), shape).value().release_rule);
  choice = choice_of("{\"impl\":\"mixed\",\"gate_threshold\":0.5}");  // DuoAttention: 0.3 becomes a streaming head
  const SequenceAttention duo = resolve_attention(choice, parse("[0, 0.3]", "[0, 0]"), shape).value();
  ASSERT_TRUE(duo.release_rule);
  KvCacheManager kv(layout(16, 8));
  BlockTable t;
  for (int pos = 0; pos < 2000; ++pos) {
    ASSERT_TRUE(kv.prepare_write(t, pos, 1).is_ok());
    kv.release_invisible(t, duo.release_rule, duo.kept_lanes, pos + 1);
  }
  EXPECT_LE(t.num_held(), window_pages(rule_of(duo), 16) + 1);
  kv.free(t);
}

// 10,000 random operations over many sequences: admit (with prefix matching), extend,
// fork, cancel, streaming release, under a small pool so that allocation fails often.
// After every operation each block's reference count equals the number of live tables
// holding it and every held position reads back its own tokens' values; at the end the
// pool is all free.
TEST(KvCacheManager, RandomOperationsKeepCountsExactAndReturnThePoolToAllFree) {
  std::mt19937 rng(42);
  KvCacheManager kv(layout(8, 48));
  struct Seq {
    BlockTable table;
    std::vector<int32_t> tokens;
    std::string ns;
    std::optional<StreamingRule> release;
  };
  std::map<int, Seq> live;
  int next_id = 0;
  const std::vector<std::vector<int32_t>> system_prompts = {std::vector<int32_t>(20, 11), std::vector<int32_t>(37, 12),
                                                            std::vector<int32_t>(8, 13)};
  const SequenceAttention streaming = streaming_attention(4, 12, 1);
  int failures = 0, matched_tokens = 0;

  auto check = [&](int op) {
    std::vector<int> refs(48, 0);
    for (const auto& [id, s] : live) {
      for (int32_t b : s.table.blocks) {
        if (b != kNoBlock) ++refs[b];
      }
    }
    int used = 0;
    for (int b = 0; b < 48; ++b) {
      ASSERT_EQ(kv.ref_count(b), refs[b]) << "block " << b << " after op " << op;
      used += refs[b] > 0;
    }
    ASSERT_EQ(kv.num_used_blocks(), used) << "op " << op;
    for (const auto& [id, s] : live) ASSERT_TRUE(holds_tokens(kv, s.table, s.tokens)) << "seq " << id << " op " << op;
  };

  for (int op = 0; op < 10000; ++op) {
    const int kind = static_cast<int>(rng() % 10);
    if (kind < 3 || live.empty()) {  // admit a new sequence: system prompt + random tail
      Seq s;
      const bool stream = rng() % 4 == 0;
      s.ns = stream ? streaming.cache_namespace : "eager";
      if (stream) s.release = streaming.release_rule;
      s.tokens = system_prompts[rng() % system_prompts.size()];
      const int tail = 1 + static_cast<int>(rng() % 12);
      for (int i = 0; i < tail; ++i) s.tokens.push_back(static_cast<int32_t>(20 + rng() % 3));
      const int cached = kv.match_prefix(s.table, s.ns, s.tokens);
      matched_tokens += cached;
      const int n = static_cast<int>(s.tokens.size());
      if (!kv.prepare_write(s.table, cached, n - cached).is_ok()) {
        ++failures;
        kv.free(s.table);  // the scheduler would wait; the matched blocks go back
      } else {
        write_positions(kv, s.table, s.tokens, cached, n - cached);
        kv.publish_full_blocks(s.table, s.ns, s.tokens);
        kv.release_invisible(s.table, s.release, {}, n);
        live.emplace(next_id++, std::move(s));
      }
    } else {
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      Seq& s = it->second;
      if (kind < 7) {  // extend by a decode token or a short chunk
        const int n = rng() % 3 == 0 ? 1 + static_cast<int>(rng() % 10) : 1;
        const int first = s.table.num_tokens;
        const BlockTable before = s.table;
        const Status st = kv.prepare_write(s.table, first, n);
        if (!st.is_ok()) {
          ++failures;
          ASSERT_EQ(s.table.blocks, before.blocks);
          ASSERT_EQ(s.table.num_tokens, before.num_tokens);
        } else {
          for (int i = 0; i < n; ++i) s.tokens.push_back(static_cast<int32_t>(20 + rng() % 3));
          write_positions(kv, s.table, s.tokens, first, n);
          kv.publish_full_blocks(s.table, s.ns, s.tokens);
          kv.release_invisible(s.table, s.release, {}, s.table.num_tokens);
        }
      } else if (kind < 8) {  // fork (n > 1 sampling)
        Seq child;
        child.tokens = s.tokens;
        child.ns = s.ns;
        child.release = s.release;
        kv.fork(s.table, child.table);
        live.emplace(next_id++, std::move(child));
      } else {  // cancel / finish
        kv.free(s.table);
        live.erase(it);
      }
    }
    check(op);
    if (::testing::Test::HasFatalFailure()) return;
  }
  for (auto& [id, s] : live) kv.free(s.table);
  EXPECT_EQ(kv.num_free_blocks(), kv.num_blocks());
  EXPECT_EQ(kv.num_used_blocks(), 0);
  EXPECT_GT(failures, 0);        // the pool did run full
  EXPECT_GT(matched_tokens, 0);  // and prefixes were shared
}

TEST(KvCacheManager, PeakBlocksBoundsWhatASequenceCanEverNeed) {
  KvCacheManager kv(layout(16, 10));
  EXPECT_EQ(kv.peak_blocks(std::nullopt, 1000, 64), 63);  // eager keeps everything
  const StreamingRule rule = StreamingRule::from_window(4, 16, 1);
  // sink page + pages of (16 - 1 + 64) positions + 1 straddle
  EXPECT_EQ(kv.peak_blocks(rule, 100000, 64), 1 + 5 + 1);
  EXPECT_EQ(kv.peak_blocks(rule, 20, 64), 2);  // never more than the positions need
}

}  // namespace
}  // namespace hotswap
