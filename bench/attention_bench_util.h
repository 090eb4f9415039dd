// What the decode-step attention benchmarks share (attention_bench.cc: eager vs streaming;
// masked_attention_bench.cc: dense paged vs sparse): one layer of a Llama-3.2-1B shape
// (32 query heads, 8 KV heads, head_dim 64) in a paged KV cache with the engine's default
// 16-token pages, filled once with kMaxContext positions, and a console reporter that keeps
// each run's time so main() can print ratios after the table.
#pragma once

#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "attention/layer_attention.h"
#include "kv_cache/kv_cache_manager.h"

namespace hotswap::bench {

inline constexpr int kHeads = 32;
inline constexpr int kKvHeads = 8;
inline constexpr int kHeadDim = 64;
inline constexpr int kPage = 16;  // EngineConfig::kv_block_size's default
inline constexpr int kMaxContext = 32768;

inline float attention_scale() { return 1.0f / std::sqrt(static_cast<float>(kHeadDim)); }

// The layer call of one decode token of this shape at `position` (eager when seq is null).
inline LayerAttentionCall decode_layer_call(const PagedKvView& kv, int layer, int position, const float* q, float* out,
                                            const SequenceAttention* seq = nullptr) {
  LayerAttentionCall c;
  c.layer = layer;
  c.q = q;
  c.num_tokens = 1;
  c.first_position = position;
  c.num_heads = kHeads;
  c.num_kv_heads = kKvHeads;
  c.head_dim = kHeadDim;
  c.scale = attention_scale();
  c.kv = kv;
  c.seq = seq;
  c.out = out;
  return c;
}

// Layer 0's K and V at positions [0, context) of `table` (written already prepared), every
// element standard normal, K then V row by row.
inline void fill_normal_kv(KvCacheManager& kv, BlockTable& table, int context, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> k(static_cast<size_t>(kKvHeads) * kHeadDim), v(k.size());
  for (int pos = 0; pos < context; ++pos) {
    for (float& x : k) x = normal(rng);
    for (float& x : v) x = normal(rng);
    kv.write_kv(table, 0, pos, k.data(), v.data());
  }
}

// One layer of KV for kMaxContext positions (standard normal K and V) and one token's query.
struct DecodeCache {
  KvCacheManager kv;
  BlockTable table;
  std::vector<float> q, out;

  DecodeCache() : kv(KvCacheManager::plan_layout(1, kKvHeads, kHeadDim, kPage, kMaxContext, 0)) {
    if (!kv.prepare_write(table, 0, kMaxContext).is_ok()) std::abort();
    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    fill_normal_kv(kv, table, kMaxContext, rng);
    q.resize(static_cast<size_t>(kHeads) * kHeadDim);
    for (float& x : q) x = normal(rng);
    out.resize(q.size());
  }

  // The layer call of one decode token at position context - 1 (eager when seq is null).
  LayerAttentionCall decode_call(int context, const SequenceAttention* seq) {
    return decode_layer_call(kv.view(table, 0), 0, context - 1, q.data(), out.data(), seq);
  }
};

// The cache every benchmark of the binary shares, filled on first use.
inline DecodeCache& decode_cache() {
  static DecodeCache c;
  return c;
}

// Remembers each run's real time per iteration so main() can print ratios.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  // Initialises Google Benchmark with the command line and runs the selected benchmarks
  // through this reporter; false (nothing run) for an unrecognised argument. main() calls
  // benchmark::Shutdown() when done.
  bool run_benchmarks(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return false;
    benchmark::RunSpecifiedBenchmarks(this);
    return true;
  }
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      if (r.run_type == Run::RT_Iteration) times_[r.benchmark_name()] = r.GetAdjustedRealTime();
    }
    ConsoleReporter::ReportRuns(runs);
  }
  // The time of the run called `name` ("BM_X/arg/real_time"), 0 if it did not run.
  double time(const std::string& name) const {
    const auto it = times_.find(name);
    return it == times_.end() ? 0.0 : it->second;
  }

 private:
  std::map<std::string, double> times_;
};

}  // namespace hotswap::bench
