// Prefill attention of one layer: one engine step's chunk of prompt tokens (512, the
// engine's max_batch_tokens) attending causally to everything before it, on a Llama-3.2-1B
// shape (32 query heads, 8 KV heads, head_dim 64, 16-token pages), at several prompt lengths.
// This is where a long prompt spends its time once the projections are done: the chunk
// ending at position P reads every key before P once per query token unless the kernel
// shares rows between queries.
//
// Prints, per prompt length and KV dtype, the median time of the chunk's attention, its
// arithmetic rate (4 * d flops per visible (query head, key) pair: QK and PV) and the
// attention tokens per second it implies.
//
//   OMP_NUM_THREADS=1 build/bin/prefill_attention_bench [--reps=5] [--contexts=2048,4096,8192]
//                                                       [--chunk=512] [--kv_dtype=bf16|f32|q8]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "attention/layer_attention.h"
#include "attention/paged_attention.h"
#include "attention/sequence_attention.h"
#include "attention_bench_util.h"
#include "kv_cache/kv_cache_manager.h"

namespace hotswap {
namespace {

using bench::kHeadDim;
using bench::kHeads;
using bench::kKvHeads;
using bench::kPage;

struct Options {
  int reps = 5;
  int chunk = 512;
  std::vector<int> contexts{2048, 4096, 8192};
  KvDtype dtype = KvDtype::kBf16;
};

bool parse(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* flag) -> const char* {
      const std::string f = std::string(flag) + "=";
      return a.rfind(f, 0) == 0 ? argv[i] + f.size() : nullptr;
    };
    if (const char* v = value("--reps")) {
      o->reps = std::max(1, std::atoi(v));
    } else if (const char* v = value("--chunk")) {
      o->chunk = std::max(1, std::atoi(v));
    } else if (const char* v = value("--contexts")) {
      o->contexts.clear();
      for (std::string s = v; !s.empty();) {
        const size_t comma = s.find(',');
        o->contexts.push_back(std::atoi(s.substr(0, comma).c_str()));
        s = comma == std::string::npos ? "" : s.substr(comma + 1);
      }
    } else if (const char* v = value("--kv_dtype")) {
      const std::string d = v;
      if (d == "f32") o->dtype = KvDtype::kF32;
      else if (d == "bf16") o->dtype = KvDtype::kBf16;
      else if (d == "q8") o->dtype = KvDtype::kQ8;
      else return false;
    } else {
      return false;
    }
  }
  return !o->contexts.empty();
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace
}  // namespace hotswap

int main(int argc, char** argv) {
  using namespace hotswap;
  Options o;
  if (!parse(argc, argv, &o)) {
    std::fprintf(stderr, "usage: %s [--reps=N] [--chunk=N] [--contexts=A,B,...] [--kv_dtype=f32|bf16|q8]\n", argv[0]);
    return 2;
  }
  const int max_context = *std::max_element(o.contexts.begin(), o.contexts.end());
  KvCacheManager kv(KvCacheManager::plan_layout(1, kKvHeads, kHeadDim, kPage, max_context, 0, o.dtype));
  BlockTable table;
  if (!kv.prepare_write(table, 0, max_context).is_ok()) return 1;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  bench::fill_normal_kv(kv, table, max_context, rng);
  std::vector<float> q(static_cast<size_t>(o.chunk) * kHeads * kHeadDim), out(q.size());
  for (float& x : q) x = normal(rng);

  std::printf("prefill attention, one layer, chunk of %d tokens, kernel %s\n", o.chunk, paged_attention_kernel_name());
  std::printf("%8s %12s %10s %12s\n", "context", "chunk_ms", "GFLOP/s", "tokens/s");
  for (const int context : o.contexts) {
    const int chunk = std::min(o.chunk, context);
    LayerAttentionCall c = bench::decode_layer_call(kv.view(table, 0), 0, context - chunk, q.data(), out.data());
    c.num_tokens = chunk;
    double flops = 0;
    for (int t = context - chunk; t < context; ++t) flops += 4.0 * kHeadDim * kHeads * (t + 1);
    std::vector<double> ms;
    attend(c);  // warm
    for (int r = 0; r < o.reps; ++r) {
      const double t0 = now_ms();
      attend(c);
      ms.push_back(now_ms() - t0);
    }
    std::sort(ms.begin(), ms.end());
    const double med = ms[ms.size() / 2];
    std::printf("%8d %12.2f %10.1f %12.0f\n", context, med, flops / med / 1e6, chunk / med * 1e3);
  }
  return 0;
}
