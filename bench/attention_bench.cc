// Attention time per decode step against context length, eager vs streaming, one layer of
// a Llama-3.2-1B shape (32 query heads, 8 KV heads, head_dim 64), paged KV cache with 16-token
// pages. Streaming uses the server defaults (sink 128, recent 1024, block 128): its cost
// should stay flat while eager grows linearly with the context. Prints the eager/streaming
// ratio at 32K after the table.
//
//   build/bin/attention_bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <cstdio>
#include <stdexcept>
#include <string>

#include "attention/layer_attention.h"
#include "attention/paged/paged_pattern.h"
#include "attention/paged_attention.h"
#include "attention/sequence_attention.h"
#include "attention_bench_util.h"
#include "engine/attention_choice.h"

namespace hotswap {
namespace {

using bench::decode_cache;
using bench::kHeadDim;
using bench::kHeads;
using bench::kKvHeads;
using bench::kMaxContext;

const SequenceAttention& streaming_defaults() {
  static const SequenceAttention s = [] {
    AttentionChoice choice;
    std::string error;
    if (!parse_attention_choice("streaming", &choice, &error)) throw std::runtime_error(error);
    return resolve_attention(choice, nullptr, ModelShape{1, kHeads, kKvHeads, kHeadDim, kHeads * kHeadDim, ""}).value();
  }();
  return s;
}

void run(benchmark::State& state, const SequenceAttention* seq) {
  const int context = static_cast<int>(state.range(0));
  const LayerAttentionCall call = decode_cache().decode_call(context, seq);
  for (auto _ : state) {
    attend(call);
    benchmark::DoNotOptimize(decode_cache().out.data());
    benchmark::ClobberMemory();
  }
  const int64_t keys = seq ? static_cast<const PagedPattern&>(*seq->config).rule.num_visible(context - 1) : context;
  state.counters["keys"] = static_cast<double>(keys);
  state.counters["KV_bytes_per_s"] = benchmark::Counter(
      static_cast<double>(keys) * kKvHeads * kHeadDim * 2 * sizeof(float), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(paged_attention_kernel_name());
}

void BM_DecodeStepEager(benchmark::State& state) { run(state, nullptr); }
void BM_DecodeStepStreaming(benchmark::State& state) { run(state, &streaming_defaults()); }

BENCHMARK(BM_DecodeStepEager)->RangeMultiplier(2)->Range(1024, kMaxContext)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_DecodeStepStreaming)->RangeMultiplier(2)->Range(1024, kMaxContext)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
}  // namespace hotswap

int main(int argc, char** argv) {
  hotswap::bench::RatioReporter reporter;
  if (!reporter.run_benchmarks(argc, argv)) return 1;
  const std::string n = std::to_string(hotswap::bench::kMaxContext);
  const double eager = reporter.time("BM_DecodeStepEager/" + n + "/real_time");
  const double streaming = reporter.time("BM_DecodeStepStreaming/" + n + "/real_time");
  if (eager > 0 && streaming > 0) {
    std::printf("decode step at %s context: eager %.1f us, streaming %.1f us, eager/streaming = %.1fx\n", n.c_str(),
                eager, streaming, eager / streaming);
  }
  benchmark::Shutdown();
  return 0;
}
