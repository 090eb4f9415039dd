// The continuous-batching policy on a real KV cache manager, with the model step simulated:
// every scheduled chunk is "computed" (commit) and a chunk that reaches the end of its
// sequence appends a sampled token, as the engine loop does.
#include "scheduler/scheduler.h"

#include <gtest/gtest.h>

#include <map>
#include <numeric>

#include "model_gen/demo_tokenizer.h"

namespace hotswap {
namespace {

class SchedulerTest : public ::testing::Test {
 protected:
  static constexpr int kBlockSize = 4;

  void make(int num_blocks, SchedulerLimits limits, int num_layers = 1, int num_kv_heads = 1) {
    KvLayout layout;
    layout.num_layers = num_layers;
    layout.num_kv_heads = num_kv_heads;
    layout.head_dim = 2;
    layout.block_size = kBlockSize;
    layout.num_blocks = num_blocks;
    kv_ = std::make_unique<KvCacheManager>(layout);
    scheduler_ = std::make_unique<Scheduler>(*kv_, limits);
  }

  // A request with `prompt_len` distinct tokens (no prefix shared with any other).
  Sequence* add(int prompt_len, SequenceAttention attention = {}) {
    GenerateRequest request;
    for (int i = 0; i < prompt_len; ++i) request.prompt_ids.push_back(next_token_++ % 300 + 1);
    auto seq = std::make_unique<Sequence>(next_id_++, request, nullptr, std::move(attention), tokenizer(),
                                          std::vector<int32_t>{});
    Sequence* raw = seq.get();
    scheduler_->add(std::move(seq));
    return raw;
  }

  // One step: returns tokens scheduled per sequence id.
  std::map<uint64_t, int> step() {
    last_plan_ = scheduler_->schedule();
    std::map<uint64_t, int> out;
    for (const ScheduledChunk& c : last_plan_.chunks) out[c.seq->id] = c.num_tokens;
    std::vector<Sequence*> sampling;
    for (const ScheduledChunk& c : last_plan_.chunks)
      if (c.samples()) sampling.push_back(c.seq);
    scheduler_->commit(last_plan_);
    for (Sequence* s : sampling) s->tokens.push_back(7);
    return out;
  }

  static const Tokenizer& tokenizer() {
    static const std::unique_ptr<Tokenizer> t = [] {
      const DemoTokenizer demo = make_demo_tokenizer();
      return Tokenizer::from_json(demo.tokenizer_json, demo.tokenizer_config_json);
    }();
    return *t;
  }

  std::unique_ptr<KvCacheManager> kv_;
  std::unique_ptr<Scheduler> scheduler_;
  StepPlan last_plan_;
  uint64_t next_id_ = 1;
  int next_token_ = 0;
};

TEST_F(SchedulerTest, PrefillRunsInChunksOfTheBudgetThenDecodesOneTokenPerStep) {
  make(64, {.max_batch_tokens = 8, .max_running = 4});
  Sequence* a = add(20);
  EXPECT_EQ(step(), (std::map<uint64_t, int>{{a->id, 8}}));
  EXPECT_EQ(step(), (std::map<uint64_t, int>{{a->id, 8}}));
  EXPECT_EQ(step(), (std::map<uint64_t, int>{{a->id, 4}}));
  EXPECT_EQ(a->num_generated(), 1);
  EXPECT_TRUE(a->decoding());
  EXPECT_EQ(step(), (std::map<uint64_t, int>{{a->id, 1}}));
  EXPECT_EQ(a->num_computed, 21);
  EXPECT_EQ(a->blocks.blocks.size(), 6u) << "22 tokens reserved in blocks of 4";
}

TEST_F(SchedulerTest, DecodesComeFirstAndNewPromptsTakeWhatIsLeft) {
  make(64, {.max_batch_tokens = 8, .max_running = 4, .max_prefill_tokens_while_decoding = 0});
  Sequence* a = add(3);
  Sequence* b = add(3);
  EXPECT_EQ(step(), (std::map<uint64_t, int>{{a->id, 3}, {b->id, 3}}));
  Sequence* c = add(30);
  // Two decodes, then c's prompt gets the remaining 6 tokens of the budget.
  EXPECT_EQ(step(), (std::map<uint64_t, int>{{a->id, 1}, {b->id, 1}, {c->id, 6}}));
  EXPECT_EQ(last_plan_.chunks[0].seq, a);
  EXPECT_EQ(last_plan_.chunks[1].seq, b);
}

TEST_F(SchedulerTest, PrefillIsCappedWhileOthersDecodeAndUncappedWhenAlone) {
  make(128, {.max_batch_tokens = 64, .max_running = 4, .max_prefill_tokens_while_decoding = 5});
  Sequence* a = add(4);
  EXPECT_EQ(step(), (std::map<uint64_t, int>{{a->id, 4}})) << "nothing decodes yet: no cap";
  Sequence* b = add(40);
  Sequence* c = add(40);
  EXPECT_EQ(step(), (std::map<uint64_t, int>{{a->id, 1}, {b->id, 5}})) << "the cap is for all prefills together";
  EXPECT_EQ(step(), (std::map<uint64_t, int>{{a->id, 1}, {b->id, 5}}));
  scheduler_->finish(a);
  // Nothing decodes: b continues with the whole budget, c is admitted with the rest.
  EXPECT_EQ(step(), (std::map<uint64_t, int>{{b->id, 30}, {c->id, 34}}));
  EXPECT_TRUE(b->decoding());
  EXPECT_EQ(step(), (std::map<uint64_t, int>{{b->id, 1}, {c->id, 5}}));
}

TEST_F(SchedulerTest, AdmitsNoMoreThanMaxRunning) {
  make(64, {.max_batch_tokens = 64, .max_running = 2});
  Sequence* a = add(2);
  Sequence* b = add(2);
  Sequence* c = add(2);
  EXPECT_EQ(step(), (std::map<uint64_t, int>{{a->id, 2}, {b->id, 2}}));
  EXPECT_EQ(scheduler_->num_waiting(), 1);
  scheduler_->finish(a);
  EXPECT_EQ(step(), (std::map<uint64_t, int>{{b->id, 1}, {c->id, 2}}));
}

TEST_F(SchedulerTest, AFullPoolPreemptsTheYoungestWhichIsRecomputedLaterWithItsOutput) {
  // 6 blocks of 4 = 24 token slots.
  make(6, {.max_batch_tokens = 64, .max_running = 4});
  Sequence* a = add(8);   // 2 blocks
  Sequence* b = add(11);  // 3 blocks
  step();
  ASSERT_EQ(kv_->num_free_blocks(), 1);
  // Decoding grows both: a fills its blocks first; b needs a 4th block at position 12.
  int steps = 0;
  while (scheduler_->num_waiting() == 0 && steps < 20) {
    step();
    ++steps;
  }
  ASSERT_EQ(scheduler_->num_waiting(), 1) << "someone had to give way";
  ASSERT_EQ(last_plan_.preempted.size(), 1u);
  EXPECT_EQ(last_plan_.preempted[0], b) << "the most recently admitted sequence is preempted";
  EXPECT_EQ(b->num_computed, 0);
  EXPECT_TRUE(b->blocks.blocks.empty());
  const int b_tokens = static_cast<int>(b->tokens.size());
  EXPECT_GT(b->num_generated(), 0) << "its generated tokens are kept and recomputed, not lost";
  // a runs alone until it is finished; then b is readmitted: what its published blocks
  // still hold comes from the prefix cache, the rest is recomputed.
  scheduler_->finish(a);
  EXPECT_EQ(kv_->num_free_blocks(), 6) << "every block is back; the waiting sequence holds none";
  const auto plan = step();
  ASSERT_EQ(plan.count(b->id), 1u);
  EXPECT_LE(plan.at(b->id), b_tokens);
  EXPECT_EQ(b->num_computed, b_tokens);
  scheduler_->finish(b);
  EXPECT_EQ(kv_->num_free_blocks(), 6);
  EXPECT_TRUE(scheduler_->idle());
}

// Regression: a sequence that failed admission used to keep the prefix blocks it had just
// matched while it waited, which could leave the pool to waiting sequences and nothing
// running. Under heavy pressure every request must still finish, and every block come back.
TEST_F(SchedulerTest, EveryRequestFinishesUnderPoolPressure) {
  make(6, {.max_batch_tokens = 16, .max_running = 4});
  std::vector<Sequence*> live;
  for (int len : {8, 9, 10, 11, 7}) live.push_back(add(len));
  constexpr int kOutputTokens = 9;  // the longest request peaks at 20 tokens = 5 blocks
  int finished = 0, steps = 0;
  for (; finished < 5 && steps < 1000; ++steps) {
    step();
    for (auto it = live.begin(); it != live.end();) {
      if ((*it)->num_generated() >= kOutputTokens) {
        scheduler_->finish(*it);
        it = live.erase(it);
        ++finished;
      } else {
        ++it;
      }
    }
  }
  EXPECT_EQ(finished, 5) << "after " << steps << " steps";
  EXPECT_TRUE(scheduler_->idle());
  EXPECT_EQ(kv_->num_free_blocks(), 6);
}

TEST_F(SchedulerTest, WaitsForBlocksInsteadOfAdmittingWhatCannotFit) {
  make(4, {.max_batch_tokens = 64, .max_running = 4});
  Sequence* a = add(12);  // 3 of 4 blocks
  step();
  Sequence* b = add(8);   // needs 2 blocks: only 1 free
  const auto plan = step();
  EXPECT_EQ(plan, (std::map<uint64_t, int>{{a->id, 1}}));
  EXPECT_EQ(scheduler_->num_waiting(), 1);
  scheduler_->finish(a);
  EXPECT_EQ(step(), (std::map<uint64_t, int>{{b->id, 8}}));
}

// DuoAttention deployment (mixed with gate_threshold): half the KV heads stream, and their
// pages outside the window go back per KV head. A sequence whose eager footprint exceeds the
// pool runs to the end without being preempted, holding what peak_blocks (the engine's
// admission check) says at most, and an eager request is admitted beside it.
TEST_F(SchedulerTest, PerKvHeadReleaseRunsWhatEagerCannotHoldAndAdmitsMoreBesideIt) {
  make(28, {.max_batch_tokens = 16, .max_running = 4}, /*num_layers=*/2, /*num_kv_heads=*/2);
  SequenceAttention duo;
  duo.release_rule = StreamingRule::from_window(4, 8, 1);
  duo.kept_lanes = {1, 0, 0, 1};  // one KV head of each layer dense
  duo.cache_namespace = "duo";
  const int64_t bound = kv_->peak_blocks(duo.release_rule, 120, 16, 2);
  EXPECT_LE(bound, 28);                                       // admitted ...
  EXPECT_GT(kv_->peak_blocks(std::nullopt, 120, 16), 28);     // ... where eager would be refused
  EXPECT_GT(kv_->peak_blocks(duo.release_rule, 120, 16, 4), 28);  // and so would all KV heads dense
  Sequence* a = add(40, duo);
  int64_t peak = 0;
  while (a->tokens.size() < 120) {
    step();
    ASSERT_TRUE(last_plan_.preempted.empty()) << "at " << a->tokens.size() << " tokens";
    peak = std::max(peak, kv_->num_used_blocks());
  }
  EXPECT_LE(peak, bound);
  EXPECT_EQ(kv_->num_used_blocks(), 17);  // page 0 and 2 window pages whole, 27 pages' 54 head pages in 14 blocks
  EXPECT_EQ(kv_->stats().num_carved, 14);
  Sequence* b = add(28);  // eager, 7 blocks: fits only because a gave back its streaming heads' pages
  const auto plan = step();
  EXPECT_EQ(plan.count(b->id), 1u);
  EXPECT_TRUE(last_plan_.preempted.empty());
  scheduler_->finish(a);
  scheduler_->finish(b);
  EXPECT_EQ(kv_->num_free_blocks(), 28);
  EXPECT_EQ(kv_->stats().num_carved, 0);
}

}  // namespace
}  // namespace hotswap
