// Decode attention per step with a float32, a bf16 and a q8 KV cache (engine.kv_cache_dtype),
// issue 16 item 2's target: at 16K context, bf16 >= 1.3x the f32 figure. A Llama-3.2-1B shape: 16
// layers of 32 query heads, 8 KV heads, head_dim 64, 16-token pages (shuffled physical order
// is not needed: the paged kernel reads page by page either way). One step = attend() of one
// decode token in each of the 16 layers, so a layer's KV is not in cache when the step
// returns to it (a layer of K+V at 16K is 64 MiB in f32, 32 MiB in bf16, 18 MiB in q8; all 16
// layers are 1024 / 512 / 288 MiB), as in a real decode step.
//
// Runs are interleaved: rounds x contexts x {f32, bf16, q8}, so every dtype of a context is
// measured back to back every round; the summary is the median over rounds of each run's
// mean step time.
//
//   build/bin/kv_dtype_bench [--rounds=7] [--steps=5] [--contexts=4096,16384]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "attention/layer_attention.h"
#include "attention_bench_util.h"
#include "attention/paged_attention.h"
#include "kv_cache/kv_cache_manager.h"

namespace hotswap {
namespace {

constexpr int kLayers = 16, kHeads = 32, kKvHeads = 8, kHeadDim = 64, kPage = 16;

struct Cache {
  KvCacheManager kv;
  BlockTable table;

  Cache(KvDtype dtype, int context, const std::vector<float>& rows, int num_rows)
      : kv(KvCacheManager::plan_layout(kLayers, kKvHeads, kHeadDim, kPage, context, 0, dtype)) {
    if (!kv.prepare_write(table, 0, context).is_ok()) std::abort();
    const size_t row = static_cast<size_t>(kKvHeads) * kHeadDim;
    for (int l = 0; l < kLayers; ++l) {
      for (int p = 0; p < context; ++p) {
        const float* k = rows.data() + static_cast<size_t>((p * 7 + l) % num_rows) * row;
        const float* v = rows.data() + static_cast<size_t>((p * 13 + l + 1) % num_rows) * row;
        kv.write_kv(table, l, p, k, v);
      }
    }
  }
};

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Mean ms per decode step (16 layers) of `steps` steps at `context`.
double run(Cache& c, int context, int steps, const std::vector<float>& q, std::vector<float>& out) {
  std::vector<LayerAttentionCall> calls(kLayers);
  for (int l = 0; l < kLayers; ++l) {
    calls[static_cast<size_t>(l)] = bench::decode_layer_call(c.kv.view(c.table, l), l, context - 1, q.data(), out.data());
  }
  const double t0 = now_ms();
  for (int s = 0; s < steps; ++s) {
    for (const LayerAttentionCall& call : calls) paged_attention(&call, 1);
  }
  return (now_ms() - t0) / steps;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

int main_impl(int argc, char** argv) {
  int rounds = 7, steps = 5;
  std::vector<int> contexts = {4096, 16384};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--rounds=", 0) == 0) rounds = std::atoi(a.c_str() + 9);
    else if (a.rfind("--steps=", 0) == 0) steps = std::atoi(a.c_str() + 8);
    else if (a.rfind("--contexts=", 0) == 0) {
      contexts.clear();
      for (const char* p = a.c_str() + 11; *p;) {
        contexts.push_back(std::atoi(p));
        while (*p && *p != ',') ++p;
        if (*p == ',') ++p;
      }
    } else {
      std::fprintf(stderr, "usage: kv_dtype_bench [--rounds=N] [--steps=N] [--contexts=A,B,...]\n");
      return 2;
    }
  }
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int num_rows = 4099;  // standard normal K/V rows, reused across positions and layers
  std::vector<float> rows(static_cast<size_t>(num_rows) * kKvHeads * kHeadDim);
  for (float& x : rows) x = normal(rng);
  std::vector<float> q(static_cast<size_t>(kHeads) * kHeadDim), out(q.size());
  for (float& x : q) x = normal(rng);

  std::printf("kernel %s, %d layers x (H %d, Hkv %d, d %d), page %d, %d rounds x %d steps\n",
              paged_attention_kernel_name(), kLayers, kHeads, kKvHeads, kHeadDim, kPage, rounds, steps);
  std::printf("%8s %6s %12s %14s %12s\n", "context", "dtype", "KV MiB", "ms/step", "GB/s");
  constexpr KvDtype kDtypes[] = {KvDtype::kF32, KvDtype::kBf16, KvDtype::kQ8};
  for (int context : contexts) {
    std::vector<std::unique_ptr<Cache>> caches;
    for (KvDtype t : kDtypes) caches.push_back(std::make_unique<Cache>(t, context, rows, num_rows));
    for (auto& c : caches) run(*c, context, 1, q, out);  // warm-up: page in
    std::vector<std::vector<double>> times(caches.size());
    for (int r = 0; r < rounds; ++r) {
      for (size_t i = 0; i < caches.size(); ++i) times[i].push_back(run(*caches[i], context, steps, q, out));
    }
    std::vector<double> ms;
    for (size_t i = 0; i < caches.size(); ++i) {
      ms.push_back(median(times[i]));
      // K and V of all layers, what one step reads.
      const double kv_bytes = static_cast<double>(context) / kPage * caches[i]->kv.layout().bytes_per_block_all_layers();
      std::printf("%8d %6s %12.1f %14.3f %12.2f\n", context, kv_dtype_name(kDtypes[i]), kv_bytes / (1 << 20), ms[i],
                  kv_bytes / ms[i] / 1e6);
    }
    std::printf("%8d  step time f32/bf16 = %.2fx, f32/q8 = %.2fx, bf16/q8 = %.2fx\n", context, ms[0] / ms[1],
                ms[0] / ms[2], ms[1] / ms[2]);
  }
  return 0;
}

}  // namespace
}  // namespace hotswap

int main(int argc, char** argv) { return hotswap::main_impl(argc, argv); }
