// The Engine as a client sees it: only the public API (engine/include/engine), the facade
// library hotswap_engine and the built-in demo model, which ensure_demo_model() writes to a
// cache directory. Covers admission, cancellation, preemption and drain.
//
// Every wait is on a stream's notifier or on Engine::wait_idle, never on a sleep; each has a
// generous deadline that fails the test instead of hanging it.
//
// Exact comparisons: the engines here take at most 7 tokens per step, so every projection of
// every step has fewer than 8 rows and takes its dot form, whose result for a row does not
// depend on the other rows of the step (ARCHITECTURE.md, "Arithmetic"; the demo model is
// served in float32). A sequence's logits are then bitwise the same alone, batched with
// others, or recomputed after a preemption, and so are its greedy tokens.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/attention_choice.h"
#include "engine/demo_model.h"
#include "engine/engine.h"
#include "engine/engine_config.h"
#include "engine/generate_request.h"
#include "engine/status.h"
#include "engine/token_stream.h"

namespace hotswap {
namespace {

constexpr auto kDeadline = std::chrono::seconds(60);
constexpr int kDeadlineMs = 60'000;

const std::string& demo_model_dir() {
  static const std::string dir = ensure_demo_model(HOTSWAP_BINARY_DIR "/engine_api_test_cache");
  return dir;
}

// kv_cache_tokens: the KV pool (blocks of 16 positions).
EngineConfig small_engine(int64_t kv_cache_tokens = 4096) {
  EngineConfig c;
  c.model_dir = demo_model_dir();
  c.num_threads = 1;
  c.kv_cache_tokens = kv_cache_tokens;
  c.kv_block_size = 16;
  c.max_batch_tokens = 7;  // < 8 rows per step: see the top of the file
  c.max_prefill_tokens_while_decoding = 7;
  c.adapter_rescan_ms = 0;
  return c;
}

std::unique_ptr<Engine> make_engine(const EngineConfig& config) {
  std::unique_ptr<Engine> engine = Engine::create(config);
  EXPECT_NE(engine, nullptr);
  return engine;
}

// Greedy, exactly max_tokens tokens (EOS does not end it).
GenerateRequest greedy(std::vector<int32_t> prompt, int max_tokens) {
  GenerateRequest r;
  r.prompt_ids = std::move(prompt);
  r.sampling.temperature = 0.0f;
  r.stop.max_tokens = max_tokens;
  r.stop.ignore_eos = true;
  return r;
}

const std::vector<std::string> kPrompts = {
    "The old man walked slowly to the river",
    "She opened the door and saw",
    "In the morning the children",
    "Once upon a time there was a king who",
};
// Prompts of one KV block (16 positions) at most.
const std::vector<std::string> kShortPrompts = {"The old man", "She said", "In the morning"};

// What one stream delivered.
struct Outcome {
  std::vector<int32_t> tokens;
  std::string text;
  std::optional<FinishReason> finish;
  int events_after_finish = 0;  // must stay 0: the final event is the last
  StreamUsage usage;
};

// The streams of one test, followed together: every stream's notifier wakes the waiter, which
// then collects the new events of all of them.
class Streams {
 public:
  explicit Streams(Engine& engine) : engine_(engine), wake_(std::make_shared<Wake>()) {}

  // Submits and follows; the index names the stream in out(). Fails the test if refused.
  size_t submit(GenerateRequest request) {
    Result<std::shared_ptr<TokenStream>> stream = engine_.submit(std::move(request));
    EXPECT_TRUE(stream.is_ok()) << stream.status().message();
    if (!stream.is_ok()) return follow(nullptr);
    return follow(stream.value());
  }
  size_t follow(std::shared_ptr<TokenStream> stream) {
    if (stream) {
      std::shared_ptr<Wake> wake = wake_;
      // Events pushed before this are not missed: the waiter collects before every wait.
      stream->set_notifier([wake] {
        std::lock_guard lock(wake->mu);
        wake->cv.notify_all();
      });
    }
    streams_.push_back(std::move(stream));
    outcomes_.emplace_back();
    return streams_.size() - 1;
  }

  TokenStream& stream(size_t i) { return *streams_[i]; }
  const Outcome& out(size_t i) const { return outcomes_[i]; }
  size_t size() const { return streams_.size(); }

  // Waits until done() holds (checked after collecting every stream's new events); also
  // calls on_wake() at each wake-up. False if the deadline passed first.
  bool wait_until(const std::function<bool()>& done, const std::function<void()>& on_wake = {}) {
    std::unique_lock lock(wake_->mu);
    return wake_->cv.wait_for(lock, kDeadline, [&] {
      collect();
      if (on_wake) on_wake();
      return done();
    });
  }
  bool wait_finished(size_t i) {
    return wait_until([&] { return outcomes_[i].finish.has_value(); });
  }
  bool wait_all_finished() {
    return wait_until([&] {
      return std::all_of(outcomes_.begin(), outcomes_.end(),
                         [](const Outcome& o) { return o.finish.has_value(); });
    });
  }

 private:
  struct Wake {
    std::mutex mu;
    std::condition_variable cv;
  };

  void collect() {
    for (size_t i = 0; i < streams_.size(); ++i) {
      if (!streams_[i]) {
        outcomes_[i].finish = FinishReason::kError;  // refused at submit (already reported)
        continue;
      }
      Outcome& o = outcomes_[i];
      for (TokenEvent& e : streams_[i]->drain()) {
        if (o.finish) ++o.events_after_finish;
        if (e.token_id >= 0) o.tokens.push_back(e.token_id);
        o.text += e.text;
        if (e.finish) o.finish = e.finish;
      }
      o.usage = streams_[i]->usage();
    }
  }

  Engine& engine_;
  std::shared_ptr<Wake> wake_;
  std::vector<std::shared_ptr<TokenStream>> streams_;
  std::vector<Outcome> outcomes_;
};

// The request run alone on a fresh engine (the reference the other tests compare with).
Outcome run_alone(const EngineConfig& config, const GenerateRequest& request) {
  std::unique_ptr<Engine> engine = make_engine(config);
  Streams s(*engine);
  const size_t i = s.submit(request);
  EXPECT_TRUE(s.wait_finished(i)) << "a request alone did not finish";
  return s.out(i);
}

std::vector<int32_t> encode(Engine& engine, const std::string& text) {
  return engine.encode(text, true);
}

// The engine is idle and holds nothing for any sequence.
void expect_idle_and_empty(Engine& engine) {
  ASSERT_TRUE(engine.wait_idle(kDeadlineMs)) << "the engine is still busy";
  const EngineStats st = engine.stats();
  EXPECT_EQ(st.running, 0);
  EXPECT_EQ(st.waiting, 0);
  EXPECT_EQ(st.kv_blocks_used, 0);
  EXPECT_GT(st.kv_blocks_total, 0);
}

class EngineApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_FALSE(demo_model_dir().empty()); }
};

// ---- admit

TEST_F(EngineApi, ConcurrentGreedyRequestsGetTheTokensTheyGetAloneAndHonourMaxTokens) {
  const EngineConfig config = small_engine();
  std::unique_ptr<Engine> engine = make_engine(config);
  const int max_tokens[] = {24, 9, 17, 1};

  std::vector<GenerateRequest> requests;
  for (size_t i = 0; i < kPrompts.size(); ++i)
    requests.push_back(greedy(encode(*engine, kPrompts[i]), max_tokens[i]));
  std::vector<Outcome> alone;
  for (const GenerateRequest& r : requests) alone.push_back(run_alone(config, r));

  Streams s(*engine);
  for (const GenerateRequest& r : requests) s.submit(r);
  ASSERT_TRUE(s.wait_all_finished());

  int64_t generated = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    const Outcome& o = s.out(i);
    EXPECT_EQ(o.finish, FinishReason::kLength);
    EXPECT_EQ(o.events_after_finish, 0);
    ASSERT_EQ(o.tokens.size(), static_cast<size_t>(max_tokens[i]));
    EXPECT_EQ(o.usage.completion_tokens, max_tokens[i]);
    EXPECT_EQ(o.usage.prompt_tokens, static_cast<int>(requests[i].prompt_ids.size()));
    for (int32_t t : o.tokens) {
      EXPECT_GE(t, 0);
      EXPECT_LT(t, engine->model_info().vocab_size);
    }
    EXPECT_EQ(o.tokens, alone[i].tokens);
    EXPECT_EQ(o.text, alone[i].text);
    generated += static_cast<int64_t>(o.tokens.size());
  }
  // Different prompts lead somewhere different: the comparison above is not trivially true.
  EXPECT_NE(std::vector<int32_t>(s.out(0).tokens.begin(), s.out(0).tokens.begin() + 9), s.out(1).tokens);

  expect_idle_and_empty(*engine);
  EXPECT_EQ(engine->stats().generated_tokens_total, generated);
}

TEST_F(EngineApi, SeededSamplingRepeatsAndTheSeedMatters) {
  std::unique_ptr<Engine> engine = make_engine(small_engine());
  auto sampled = [&](uint64_t seed) {
    GenerateRequest r = greedy(encode(*engine, kPrompts[0]), 32);
    r.sampling.temperature = 1.0f;
    r.sampling.seed = seed;
    return r;
  };
  Streams s(*engine);
  const size_t a = s.submit(sampled(7));
  const size_t b = s.submit(sampled(7));
  std::vector<size_t> others;
  for (uint64_t seed = 100; seed < 104; ++seed) others.push_back(s.submit(sampled(seed)));
  ASSERT_TRUE(s.wait_all_finished());

  EXPECT_EQ(s.out(a).finish, FinishReason::kLength);
  ASSERT_EQ(s.out(a).tokens.size(), 32u);
  EXPECT_EQ(s.out(a).tokens, s.out(b).tokens);
  // 32 tokens drawn at temperature 1 from a 376-token vocabulary: four other seeds all
  // repeating seed 7's draws would mean the seed is ignored.
  int same = 0;
  for (size_t i : others) same += s.out(i).tokens == s.out(a).tokens ? 1 : 0;
  EXPECT_LT(same, 4);
  expect_idle_and_empty(*engine);
}

TEST_F(EngineApi, WithoutIgnoreEosAStreamEndsAtEosOrAtMaxTokens) {
  std::unique_ptr<Engine> engine = make_engine(small_engine());
  const std::vector<int32_t>& eos = engine->model_info().eos_token_ids;
  ASSERT_FALSE(eos.empty());
  Streams s(*engine);
  for (const std::string& p : kPrompts) {
    GenerateRequest r = greedy(encode(*engine, p), 40);
    r.stop.ignore_eos = false;
    s.submit(std::move(r));
  }
  ASSERT_TRUE(s.wait_all_finished());
  for (size_t i = 0; i < s.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    const Outcome& o = s.out(i);
    ASSERT_FALSE(o.tokens.empty());
    ASSERT_LE(o.tokens.size(), 40u);
    const bool ended_on_eos = std::find(eos.begin(), eos.end(), o.tokens.back()) != eos.end();
    // No EOS before the last token, and the reason says which limit ended it.
    for (size_t k = 0; k + 1 < o.tokens.size(); ++k)
      EXPECT_EQ(std::find(eos.begin(), eos.end(), o.tokens[k]), eos.end()) << "EOS at " << k;
    if (ended_on_eos) {
      EXPECT_EQ(o.finish, FinishReason::kStop);
    } else {
      EXPECT_EQ(o.finish, FinishReason::kLength);
      EXPECT_EQ(o.tokens.size(), 40u);
    }
  }
  expect_idle_and_empty(*engine);
}

TEST_F(EngineApi, SubmitRefusesWhatItCannotServe) {
  EngineConfig config = small_engine(/*kv_cache_tokens=*/64);
  std::unique_ptr<Engine> engine = make_engine(config);
  const std::vector<int32_t> prompt = encode(*engine, kPrompts[0]);

  EXPECT_EQ(engine->submit(greedy({}, 4)).status().code(), StatusCode::kInvalidArgument);  // empty prompt
  EXPECT_EQ(engine->submit(greedy({engine->model_info().vocab_size}, 4)).status().code(),
            StatusCode::kInvalidArgument);  // outside the vocabulary
  EXPECT_EQ(engine->submit(greedy(prompt, 0)).status().code(), StatusCode::kInvalidArgument);
  // More positions than the whole KV cache holds (64): it could never run.
  EXPECT_EQ(engine->submit(greedy(prompt, 100)).status().code(), StatusCode::kInvalidArgument);

  config.max_queue = 0;  // every submission finds the queue full
  std::unique_ptr<Engine> full = make_engine(config);
  EXPECT_EQ(full->submit(greedy(prompt, 4)).status().code(), StatusCode::kResourceExhausted);

  // A request that fits is taken.
  Streams s(*engine);
  const size_t i = s.submit(greedy(prompt, 4));
  ASSERT_TRUE(s.wait_finished(i));
  EXPECT_EQ(s.out(i).tokens.size(), 4u);
  expect_idle_and_empty(*engine);
}

// A chat render that hits the template's bounds (8 MiB of output) is the messages' fault: a
// refusal (InvalidArgument, HTTP 400), not ResourceExhausted, which the server answers with
// 429 "retry later".
TEST_F(EngineApi, AChatRenderOverItsBoundsIsAnInvalidArgument) {
  std::unique_ptr<Engine> engine = make_engine(small_engine());
  ASSERT_TRUE(engine->render_chat({{"user", "hello"}}, true).is_ok());
  const std::string huge(9u << 20, 'x');
  Result<std::string> rendered = engine->render_chat({{"user", huge}}, true);
  ASSERT_FALSE(rendered.is_ok());
  EXPECT_EQ(rendered.status().code(), StatusCode::kInvalidArgument) << rendered.status().message();
}

// ---- cancel

TEST_F(EngineApi, CancellingARunningStreamEndsItAsCancelledAndFreesItsKv) {
  const EngineConfig config = small_engine();
  std::unique_ptr<Engine> engine = make_engine(config);
  const std::vector<int32_t> prompt = encode(*engine, kPrompts[0]);
  const int long_max = engine->model_info().max_position_embeddings - static_cast<int>(prompt.size());
  const GenerateRequest companion = greedy(encode(*engine, kPrompts[1]), 12);
  const Outcome companion_alone = run_alone(config, companion);

  Streams s(*engine);
  const size_t victim = s.submit(greedy(prompt, long_max));
  const size_t other = s.submit(companion);
  ASSERT_TRUE(s.wait_until([&] { return !s.out(victim).tokens.empty(); }));
  const EngineStats busy = engine->stats();
  EXPECT_GT(busy.kv_blocks_used, 0);

  s.stream(victim).cancel();
  EXPECT_TRUE(s.stream(victim).cancelled());
  ASSERT_TRUE(s.wait_finished(victim));
  EXPECT_EQ(s.out(victim).finish, FinishReason::kCancelled);
  EXPECT_LT(s.out(victim).tokens.size(), static_cast<size_t>(long_max));
  EXPECT_EQ(s.out(victim).usage.completion_tokens, static_cast<int>(s.out(victim).tokens.size()));

  // The other request is not disturbed.
  ASSERT_TRUE(s.wait_finished(other));
  EXPECT_EQ(s.out(other).finish, FinishReason::kLength);
  EXPECT_EQ(s.out(other).tokens, companion_alone.tokens);

  // Cancelled long before its max_tokens, the engine goes idle, every block back in the pool.
  expect_idle_and_empty(*engine);
  for (size_t i = 0; i < s.size(); ++i) EXPECT_EQ(s.out(i).events_after_finish, 0);
}

TEST_F(EngineApi, CancellingAQueuedRequestEndsItWithoutTokens) {
  EngineConfig config = small_engine();
  config.max_running_sequences = 1;  // the second request waits behind the first
  std::unique_ptr<Engine> engine = make_engine(config);
  const std::vector<int32_t> prompt = encode(*engine, kPrompts[2]);
  const int long_max = engine->model_info().max_position_embeddings - static_cast<int>(prompt.size());

  Streams s(*engine);
  const size_t running = s.submit(greedy(prompt, long_max));
  ASSERT_TRUE(s.wait_until([&] { return !s.out(running).tokens.empty(); }));
  const size_t queued = s.submit(greedy(encode(*engine, kPrompts[3]), 8));
  s.stream(queued).cancel();
  ASSERT_TRUE(s.wait_finished(queued));
  EXPECT_EQ(s.out(queued).finish, FinishReason::kCancelled);
  EXPECT_TRUE(s.out(queued).tokens.empty());
  EXPECT_FALSE(s.stream(running).finished());  // still generating its thousands of tokens

  s.stream(running).cancel();
  ASSERT_TRUE(s.wait_finished(running));
  EXPECT_EQ(s.out(running).finish, FinishReason::kCancelled);
  expect_idle_and_empty(*engine);
}

// ---- preempt

TEST_F(EngineApi, RequestsPreemptedForKvFinishWithTheTokensTheyGetAlone) {
  // 4 blocks of 16 positions; three requests of up to 3 blocks each run at once, so the
  // scheduler must preempt (free a sequence's blocks and recompute it later) to finish them.
  const EngineConfig tight = small_engine(/*kv_cache_tokens=*/64);
  std::unique_ptr<Engine> engine = make_engine(tight);
  constexpr int kMaxTokens = 32;
  std::vector<GenerateRequest> requests;
  for (size_t i = 0; i < 3; ++i) {
    GenerateRequest r = greedy(encode(*engine, kShortPrompts[i]), kMaxTokens);
    ASSERT_LE(r.prompt_ids.size(), 16u) << "each prompt must fit one block";
    ASSERT_GT(r.prompt_ids.size() + kMaxTokens, 32u) << "each request must need 3 blocks";
    requests.push_back(std::move(r));
  }
  ASSERT_EQ(engine->stats().kv_blocks_total, 4);

  std::vector<Outcome> alone;
  for (const GenerateRequest& r : requests) alone.push_back(run_alone(small_engine(), r));

  Streams s(*engine);
  for (const GenerateRequest& r : requests) s.submit(r);
  // Once every request has produced a token all three were admitted, and nothing else is
  // submitted: a waiting sequence after that is a preempted one.
  bool saw_preempted = false;
  ASSERT_TRUE(s.wait_until(
      [&] {
        for (size_t i = 0; i < s.size(); ++i)
          if (!s.out(i).finish) return false;
        return true;
      },
      [&] {
        for (size_t i = 0; i < s.size(); ++i)
          if (s.out(i).tokens.empty()) return;
        if (engine->stats().waiting > 0) saw_preempted = true;
      }));
  EXPECT_TRUE(saw_preempted) << "no sequence was seen waiting after all three had started";

  for (size_t i = 0; i < requests.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    EXPECT_EQ(s.out(i).finish, FinishReason::kLength);
    EXPECT_EQ(s.out(i).events_after_finish, 0);
    EXPECT_EQ(s.out(i).tokens, alone[i].tokens);
    EXPECT_EQ(s.out(i).text, alone[i].text);
    EXPECT_EQ(s.out(i).usage.completion_tokens, kMaxTokens);
  }
  expect_idle_and_empty(*engine);
}

// ---- drain

TEST_F(EngineApi, DrainRefusesNewRequestsAndLetsRunningAndQueuedOnesFinish) {
  EngineConfig config = small_engine();
  config.max_running_sequences = 2;  // so that some of them are still queued when drain() comes
  std::unique_ptr<Engine> engine = make_engine(config);
  std::vector<GenerateRequest> requests;
  for (const std::string& p : kPrompts) requests.push_back(greedy(encode(*engine, p), 20));
  std::vector<Outcome> alone;
  for (const GenerateRequest& r : requests) alone.push_back(run_alone(small_engine(), r));

  Streams s(*engine);
  for (const GenerateRequest& r : requests) s.submit(r);
  ASSERT_TRUE(s.wait_until([&] { return !s.out(0).tokens.empty(); }));
  engine->drain();

  Result<std::shared_ptr<TokenStream>> late = engine->submit(requests[0]);
  EXPECT_EQ(late.status().code(), StatusCode::kUnavailable);

  ASSERT_TRUE(engine->wait_idle(kDeadlineMs)) << "the drained engine did not go idle";
  ASSERT_TRUE(s.wait_all_finished());
  for (size_t i = 0; i < requests.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    EXPECT_EQ(s.out(i).finish, FinishReason::kLength);
    EXPECT_EQ(s.out(i).tokens, alone[i].tokens);
  }
  expect_idle_and_empty(*engine);
  // Still refusing after the queue ran dry.
  EXPECT_EQ(engine->submit(requests[1]).status().code(), StatusCode::kUnavailable);
}

// ---- KV cache precision

// engine.kv_cache_dtype = bf16: the same kv_cache_bytes holds twice the blocks (the stats the
// /metrics gauges read), and a greedy request runs on the bf16 cache to its end. On the demo
// model its tokens are the float32 cache's (measured; bf16 K/V move logits by ~1e-3 relative).
TEST_F(EngineApi, ABf16KvCacheHoldsTwiceTheTokensForTheSameBytes) {
  EngineConfig f32 = small_engine();
  f32.kv_cache_dtype = KvCacheDtype::kF32;
  f32.kv_cache_bytes = 8 << 20;
  EngineConfig bf16 = f32;
  bf16.kv_cache_dtype = KvCacheDtype::kBf16;
  std::unique_ptr<Engine> e32 = make_engine(f32), e16 = make_engine(bf16);
  const EngineStats s32 = e32->stats(), s16 = e16->stats();
  EXPECT_EQ(s16.kv_blocks_total, 2 * s32.kv_blocks_total);
  EXPECT_EQ(2 * s16.kv_bytes_per_block, s32.kv_bytes_per_block);
  EXPECT_LE(s16.kv_blocks_total * s16.kv_bytes_per_block, f32.kv_cache_bytes);
  EXPECT_EQ(s16.kv_cache_dtype, KvCacheDtype::kBf16);
  EXPECT_EQ(s32.kv_cache_dtype, KvCacheDtype::kF32);
  const GenerateRequest r = greedy(encode(*e32, kPrompts[3]), 24);
  const Outcome a = run_alone(f32, r), b = run_alone(bf16, r);
  EXPECT_EQ(b.finish, FinishReason::kLength);
  ASSERT_EQ(b.tokens.size(), 24u);
  EXPECT_EQ(b.tokens, a.tokens);
}

// ---- attention state beside the KV

// quest_top_k keeps per-page key bounds in the maskers' summary pool; the scheduler charges
// them to the KV pool in whole blocks. So a request that fits the cache as eager attention is
// refused with quest when its KV plus its summaries exceed the cache, one that fits holds more
// blocks while it runs than its KV needs, and every block comes back when it ends.
TEST_F(EngineApi, KeySummariesAreChargedToTheKvCache) {
  const EngineConfig config = small_engine(/*kv_cache_tokens=*/256);
  std::unique_ptr<Engine> engine = make_engine(config);
  const int64_t total = engine->stats().kv_blocks_total;
  ASSERT_EQ(total, 16);
  const std::vector<int32_t> prompt = encode(*engine, kPrompts[0]);
  const int whole_cache = static_cast<int>(total) * config.kv_block_size - static_cast<int>(prompt.size());
  auto quest = [](GenerateRequest r) {
    std::string error;
    EXPECT_TRUE(parse_attention_choice(
        R"({"impl":"masked","maskers":[{"type":"quest_top_k","heavy_size":32,"page_size":8}]})", &r.attention, &error))
        << error;
    return r;
  };

  Streams s(*engine);
  // Eager: KV for every position of the cache, nothing beside it.
  const size_t eager = s.submit(greedy(prompt, whole_cache));
  ASSERT_TRUE(s.wait_finished(eager));
  EXPECT_EQ(s.out(eager).tokens.size(), static_cast<size_t>(whole_cache));
  // Quest: the same positions and its bounds do not fit.
  const Result<std::shared_ptr<TokenStream>> refused = engine->submit(quest(greedy(prompt, whole_cache)));
  ASSERT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("for its attention state (masked"), std::string::npos)
      << refused.status().message();

  // A quest request that fits: its KV needs kv_blocks; more are held while it decodes.
  constexpr int kMaxTokens = 48;
  const int64_t kv_blocks = (static_cast<int64_t>(prompt.size()) + kMaxTokens + 15) / 16;
  int64_t most_used = 0;
  const size_t fits = s.submit(quest(greedy(prompt, kMaxTokens)));
  ASSERT_TRUE(s.wait_until([&] { return s.out(fits).finish.has_value(); },
                           [&] { most_used = std::max(most_used, engine->stats().kv_blocks_used); }));
  EXPECT_EQ(s.out(fits).tokens.size(), static_cast<size_t>(kMaxTokens));
  EXPECT_GT(most_used, kv_blocks) << "the summaries' blocks are not charged to the KV cache";
  EXPECT_LE(most_used, total);
  expect_idle_and_empty(*engine);
  EXPECT_EQ(engine->stats().attention_state_bytes, 0);
}

// engine.kv_cache_dtype = q8: a block costs 9/32 of float32's bytes (head_dim int8 values and
// head_dim/32 float32 scales per row), the stats carry the dtype, and a greedy request runs on
// the q8 cache to its end (its tokens vs f32 KV's are measured by kv_cache_dtype_test.cc), also
// from prefix blocks another request left.
TEST_F(EngineApi, AQ8KvCacheCostsNineThirtySecondsOfTheBytes) {
  EngineConfig f32 = small_engine();
  f32.kv_cache_dtype = KvCacheDtype::kF32;
  f32.kv_cache_bytes = 8 << 20;
  EngineConfig q8 = f32;
  q8.kv_cache_dtype = KvCacheDtype::kQ8;
  std::unique_ptr<Engine> e32 = make_engine(f32), e8 = make_engine(q8);
  const EngineStats s32 = e32->stats(), s8 = e8->stats();
  EXPECT_EQ(32 * s8.kv_bytes_per_block, 9 * s32.kv_bytes_per_block);
  EXPECT_EQ(s8.kv_blocks_total, f32.kv_cache_bytes / s8.kv_bytes_per_block);
  EXPECT_EQ(s8.kv_cache_dtype, KvCacheDtype::kQ8);
  const GenerateRequest r = greedy(encode(*e32, kPrompts[0] + " " + kPrompts[1] + " " + kPrompts[2] + " " + kPrompts[3]), 24);
  // The second run of the prompt reads its prefix from the first run's q8 blocks (shared,
  // not recomputed) and generates the same tokens.
  Streams s(*e8);
  const size_t first = s.submit(r);
  ASSERT_TRUE(s.wait_finished(first));
  const size_t second = s.submit(r);
  ASSERT_TRUE(s.wait_finished(second));
  EXPECT_EQ(s.out(first).finish, FinishReason::kLength);
  EXPECT_EQ(s.out(first).tokens.size(), 24u);
  EXPECT_GT(s.out(second).usage.cached_prompt_tokens, 0);
  EXPECT_EQ(s.out(second).tokens, s.out(first).tokens);
}

}  // namespace
}  // namespace hotswap
