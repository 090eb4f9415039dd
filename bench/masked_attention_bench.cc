// Decode attention time per step against context length: the sparse kernel of the masked
// implementation (attention/masked/sparse_attention.h) at ~5% density vs the dense paged
// kernel (paged_attention with an eager call) on the same cache. One layer of a
// Llama-3.2-1B shape (32 query heads, 8 KV heads, head_dim 64), paged KV cache with the
// engine's default 16-token pages, one decode token at the last position.
//
// Each KV head attends round(5% of the context) keys: min(128, n/4) sink keys, min(128, n/4)
// local keys before the token and the rest drawn at random (a different draw per KV head);
// every query head of the group attends every selected key (bias 0): the kernel's most
// work for a given key list. After the Google Benchmark table it prints one line per context
// with the time per step of each kernel, their ratio and the density.
//
// Then the whole masked backend (maskers + kernel) with sink 128 + local 128 +
// oracle_top_k 5% against eager, and the maskers' share of it.
//
//   build/bin/masked_attention_bench [--benchmark_filter=...] [--benchmark_min_time=...]
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attention/layer_attention.h"
#include "attention/masked/masker_config.h"
#include "attention/masked/select_keys.h"
#include "attention/masked/sparse_attention.h"
#include "attention/sequence_attention.h"
#include "engine/attention_choice.h"
#include "attention/paged_attention.h"
#include "attention_bench_util.h"

namespace hotswap {
namespace {

using bench::attention_scale;
using bench::decode_cache;
using bench::DecodeCache;
using bench::kHeadDim;
using bench::kHeads;
using bench::kKvHeads;

constexpr int kGroup = kHeads / kKvHeads;
constexpr double kDensity = 0.05;
constexpr int kSink = 128;
constexpr int kLocal = 128;
const std::vector<int64_t> kContexts = {1024, 4096, 16384, 32768};

// The keys of one KV head for the token at context - 1: sink, local and random heavy ones.
std::vector<int32_t> select_keys(int context, std::mt19937& rng) {
  const int total = std::max(1, static_cast<int>(std::lround(kDensity * context)));
  const int sink = std::min(kSink, total / 4);
  const int local = std::min(kLocal, total / 4);
  std::vector<int32_t> keys;
  for (int p = 0; p < sink; ++p) keys.push_back(p);
  for (int p = context - local; p < context; ++p) keys.push_back(p);
  std::vector<int32_t> middle;
  for (int p = sink; p < context - local; ++p) middle.push_back(p);
  std::shuffle(middle.begin(), middle.end(), rng);
  keys.insert(keys.end(), middle.begin(), middle.begin() + (total - sink - local));
  std::sort(keys.begin(), keys.end());
  return keys;
}

// The sparse items of one decode step at `context`.
struct SparseStep {
  PagedKvView view;
  std::vector<std::vector<int32_t>> keys;
  std::vector<std::vector<float>> bias;
  std::vector<SparseAttentionItem> items;

  explicit SparseStep(int context) {
    DecodeCache& c = decode_cache();
    view = c.kv.view(c.table, 0);
    std::mt19937 rng(static_cast<unsigned>(context));
    for (int kvh = 0; kvh < kKvHeads; ++kvh) {
      keys.push_back(select_keys(context, rng));
      bias.emplace_back(static_cast<size_t>(kGroup) * keys.back().size(), 0.0f);
    }
    for (int kvh = 0; kvh < kKvHeads; ++kvh) {
      SparseAttentionItem it;
      it.q = c.q.data() + static_cast<size_t>(kvh) * kGroup * kHeadDim;
      it.group = kGroup;
      it.kv_head = kvh;
      it.kv = &view;
      it.keys = keys[kvh].data();
      it.num_keys = static_cast<int>(keys[kvh].size());
      it.bias = bias[kvh].data();
      it.scale = attention_scale();
      it.out = c.out.data() + static_cast<size_t>(kvh) * kGroup * kHeadDim;
      items.push_back(it);
    }
  }
  int keys_per_head() const { return items.front().num_keys; }
};

void BM_DenseDecodeStep(benchmark::State& state) {
  const int context = static_cast<int>(state.range(0));
  const LayerAttentionCall call = decode_cache().decode_call(context, nullptr);  // eager
  for (auto _ : state) {
    paged_attention(&call, 1);
    benchmark::DoNotOptimize(decode_cache().out.data());
    benchmark::ClobberMemory();
  }
  state.counters["keys"] = static_cast<double>(context);
  state.SetLabel(paged_attention_kernel_name());
}

void BM_SparseDecodeStep(benchmark::State& state) {
  const int context = static_cast<int>(state.range(0));
  const SparseStep step(context);
  for (auto _ : state) {
    sparse_attention(step.items.data(), static_cast<int>(step.items.size()));
    benchmark::DoNotOptimize(decode_cache().out.data());
    benchmark::ClobberMemory();
  }
  state.counters["keys"] = static_cast<double>(step.keys_per_head());
  state.counters["density"] = static_cast<double>(step.keys_per_head()) / context;
  state.SetLabel(sparse_attention_kernel_name());
}

// The whole `masked` backend for one decode token: sink 128 + local 128 + oracle_top_k 5%
// (select_keys scores every key: it is an oracle), then the sparse kernel.
constexpr const char* kMaskedConfig =
    R"({"impl":"masked","maskers":[{"type":"sink","sink_size":128},{"type":"local","window_size":128},)"
    R"({"type":"oracle_top_k","heavy_size":0.05}],"sparse_prefill":true})";

struct MaskedStep {
  SequenceAttention attention;
  BackendResources resources{ModelShape{1, kHeads, kKvHeads, kHeadDim, kHeads * kHeadDim, ""}};
  std::unique_ptr<BackendSequenceState> state;
  LayerAttentionCall call;

  explicit MaskedStep(int context) {
    AttentionChoice choice;
    std::string error;
    if (!parse_attention_choice(kMaskedConfig, &choice, &error)) std::abort();
    attention = resolve_attention(choice, nullptr, resources.shape()).value();
    state = attention.backend->new_state(attention, SequenceFacts{1, 0}, resources);
    call = decode_cache().decode_call(context, &attention);
    call.state = state.get();
  }
  double density() const {
    StreamUsage u;
    state->add_usage(&u);
    return u.attention_density.value_or(0.0);
  }
};

std::map<int, double> g_masked_density;

void BM_MaskedDecodeStep(benchmark::State& state) {
  const int context = static_cast<int>(state.range(0));
  MaskedStep step(context);
  for (auto _ : state) {
    attend(step.call);
    benchmark::DoNotOptimize(decode_cache().out.data());
    benchmark::ClobberMemory();
  }
  g_masked_density[context] = step.density();
  state.counters["density"] = step.density();
  state.SetLabel(sparse_attention_kernel_name());
}

// The maskers alone (where an oracle's time goes): select_keys for the token's 32 heads.
void BM_MaskedSelect(benchmark::State& state) {
  const int context = static_cast<int>(state.range(0));
  MaskedStep step(context);
  const auto config = masked::parse_masked_config(nlohmann::json::parse(kMaskedConfig)).value();
  masked::SelectionScratch scratch;
  std::vector<masked::HeadSelection> selection;
  masked::QueryContext ctx;
  ctx.position = context - 1;
  ctx.scale = attention_scale();
  for (auto _ : state) {
    masked::select_keys(config, ctx, step.call.q, kHeads, step.call.kv, scratch, &selection);
    benchmark::DoNotOptimize(selection.data());
  }
}

BENCHMARK(BM_DenseDecodeStep)->ArgsProduct({kContexts})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_SparseDecodeStep)->ArgsProduct({kContexts})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_MaskedDecodeStep)->ArgsProduct({kContexts})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_MaskedSelect)->ArgsProduct({kContexts})->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
}  // namespace hotswap

int main(int argc, char** argv) {
  hotswap::bench::RatioReporter reporter;
  if (!reporter.run_benchmarks(argc, argv)) return 1;
  for (int64_t context : hotswap::kContexts) {
    const std::string n = std::to_string(context);
    const double dense = reporter.time("BM_DenseDecodeStep/" + n + "/real_time");
    const double sparse = reporter.time("BM_SparseDecodeStep/" + n + "/real_time");
    if (dense <= 0 || sparse <= 0) continue;
    const int keys = std::max(1, static_cast<int>(std::lround(hotswap::kDensity * static_cast<double>(context))));
    std::printf("decode step at %6s context: dense %8.1f us, sparse %7.1f us (%d keys per KV head, density %.1f%%), "
                "dense/sparse = %.1fx\n",
                n.c_str(), dense, sparse, keys, 100.0 * keys / static_cast<double>(context), dense / sparse);
    const double masked_step = reporter.time("BM_MaskedDecodeStep/" + n + "/real_time");
    const double select = reporter.time("BM_MaskedSelect/" + n + "/real_time");
    if (masked_step <= 0) continue;
    std::printf("masked sink128+local128+oracle_top_k 5%% at %6s context: %8.1f us per step (maskers %8.1f us, "
                "kernel and the rest %7.1f us), density %.1f%%, eager/masked = %.2fx\n",
                n.c_str(), masked_step, select, masked_step - select,
                100.0 * hotswap::g_masked_density[static_cast<int>(context)], dense / masked_step);
  }
  benchmark::Shutdown();
  return 0;
}
