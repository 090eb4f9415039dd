// Attention time per decode step against context length, eager vs streaming, one layer of
// a Llama-3.2-1B shape (32 query heads, 8 KV heads, head_dim 64), paged KV cache with 16-token
// pages. Streaming uses the server defaults (sink 128, recent 1024, block 128): its cost
// should stay flat while eager grows linearly with the context. Prints the eager/streaming
// ratio at 32K after the table.
//
//   build/bin/attention_bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "attention/layer_attention.h"
#include "attention/paged_attention.h"
#include "attention/sequence_attention.h"
#include "kv_cache/kv_cache_manager.h"

namespace hotswap {
namespace {

constexpr int kHeads = 32;
constexpr int kKvHeads = 8;
constexpr int kHeadDim = 64;
constexpr int kPage = 16;
constexpr int kMaxContext = 32768;

// One layer of KV for kMaxContext positions, filled once and shared by every benchmark.
struct BenchCache {
  KvCacheManager kv;
  BlockTable table;
  std::vector<float> q, out;

  BenchCache() : kv(KvCacheManager::plan_layout(1, kKvHeads, kHeadDim, kPage, kMaxContext, 0)) {
    if (!kv.prepare_write(table, 0, kMaxContext).is_ok()) std::abort();
    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> k(static_cast<size_t>(kKvHeads) * kHeadDim), v(k.size());
    for (int pos = 0; pos < kMaxContext; ++pos) {
      for (float& x : k) x = normal(rng);
      for (float& x : v) x = normal(rng);
      kv.write_kv(table, 0, pos, k.data(), v.data());
    }
    q.resize(static_cast<size_t>(kHeads) * kHeadDim);
    for (float& x : q) x = normal(rng);
    out.resize(q.size());
  }

  LayerAttentionCall decode_call(int context, const SequenceAttention* seq) {
    LayerAttentionCall c;
    c.layer = 0;
    c.q = q.data();
    c.num_tokens = 1;
    c.first_position = context - 1;
    c.num_heads = kHeads;
    c.num_kv_heads = kKvHeads;
    c.head_dim = kHeadDim;
    c.scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
    c.kv = kv.view(table, 0);
    c.seq = seq;
    c.out = out.data();
    return c;
  }
};

BenchCache& cache() {
  static BenchCache c;
  return c;
}

const SequenceAttention& streaming_defaults() {
  static const SequenceAttention s = [] {
    AttentionChoice choice;
    choice.impl = AttentionImpl::kStreaming;
    return resolve_attention(choice, nullptr, ModelShape{1, kHeads, kKvHeads, kHeadDim, kHeads * kHeadDim, ""}).value();
  }();
  return s;
}

void run(benchmark::State& state, const SequenceAttention* seq) {
  const int context = static_cast<int>(state.range(0));
  const LayerAttentionCall call = cache().decode_call(context, seq);
  for (auto _ : state) {
    attend(call);
    benchmark::DoNotOptimize(cache().out.data());
    benchmark::ClobberMemory();
  }
  const int64_t keys = seq ? seq->rule.num_visible(context - 1) : context;
  state.counters["keys"] = static_cast<double>(keys);
  state.counters["KV_bytes_per_s"] = benchmark::Counter(
      static_cast<double>(keys) * kKvHeads * kHeadDim * 2 * sizeof(float), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(paged_attention_kernel_name());
}

void BM_DecodeStepEager(benchmark::State& state) { run(state, nullptr); }
void BM_DecodeStepStreaming(benchmark::State& state) { run(state, &streaming_defaults()); }

BENCHMARK(BM_DecodeStepEager)->RangeMultiplier(2)->Range(1024, kMaxContext)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_DecodeStepStreaming)->RangeMultiplier(2)->Range(1024, kMaxContext)->Unit(benchmark::kMicrosecond)->UseRealTime();

// Remembers each run's real time per iteration so main() can print the 32K ratio.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      if (r.run_type == Run::RT_Iteration) times_[r.benchmark_name()] = r.GetAdjustedRealTime();
    }
    ConsoleReporter::ReportRuns(runs);
  }
  double time(const std::string& name) const {
    const auto it = times_.find(name);
    return it == times_.end() ? 0.0 : it->second;
  }

 private:
  std::map<std::string, double> times_;
};

}  // namespace
}  // namespace hotswap

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  hotswap::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const std::string n = std::to_string(hotswap::kMaxContext);
  const double eager = reporter.time("BM_DecodeStepEager/" + n + "/real_time");
  const double streaming = reporter.time("BM_DecodeStepStreaming/" + n + "/real_time");
  if (eager > 0 && streaming > 0) {
    std::printf("decode step at %s context: eager %.1f us, streaming %.1f us, eager/streaming = %.1fx\n", n.c_str(),
                eager, streaming, eager / streaming);
  }
  benchmark::Shutdown();
  return 0;
}
