// NSA attention time per decode step against context length, beside dense `eager`, for one
// layer of a Llama-3.2-1B-shaped model (32 query heads, 8 KV heads, d = 64, D = 2048): the
// attention part of a decode step only (the whole step needs the model; see the summary).
//
// Each benchmark prefills the context (KV cache + NSA compressed-block cache), then times
// single-token decode steps that advance the sequence, so the NSA number includes the block
// compression that every s-th step performs. Two NSA configurations show that the cost grows
// with t/s (compressed blocks) plus a constant n*l' + w: the summary fits time = a + b * t for
// each and prints b, which should halve when s doubles, and the eager / nsa ratio at 32K
// (target >= 5).
//
//   build-*/bin/nsa_bench                      # all, then the summary
//   build-*/bin/nsa_bench --benchmark_filter=32768
#include <benchmark/benchmark.h>

#include <cmath>
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "adapters/nsa_adapter.h"
#include "attention/layer_attention.h"
#include "attention/nsa/nsa_attention.h"

namespace hotswap {
namespace {

constexpr int kHeads = 32, kKvHeads = 8, kHeadDim = 64, kHidden = 2048;
constexpr int kBlockSize = 16;    // KV cache page size (positions)
constexpr int kSteps = 256;       // decode steps timed per context
constexpr int kContexts[] = {1024, 2048, 4096, 8192, 16384, 32768};

struct NsaVariant {
  const char* name;
  NsaConfig config;
};

NsaConfig make_config(int l, int s, int sel, int n, int w, NsaCompression v) {
  NsaConfig c;
  c.compress_block_size = l;
  c.compress_stride = s;
  c.selection_block_size = sel;
  c.num_selected_blocks = n;
  c.sliding_window_size = w;
  c.k_compress = NsaCompression::kMaxPool;
  c.v_compress = v;
  c.mlp_hidden_size = v == NsaCompression::kMlp ? 256 : 0;
  c.num_mem_tokens = 1;
  c.compress_rope = NsaCompressRope::kPre;
  return c;
}

// The spec's defaults (l=16, s=8, l'=16, n=4, w=64) and the NSA paper's (l=32, s=16, l'=64,
// n=16, w=512), values compressed by an MLP (hidden 256) in both.
const NsaVariant kVariants[] = {
    {"nsa_s8", make_config(16, 8, 16, 4, 64, NsaCompression::kMlp)},
    {"nsa_s16", make_config(32, 16, 64, 16, 512, NsaCompression::kMlp)},
};

std::shared_ptr<NsaAdapter> random_adapter(const NsaConfig& c) {
  std::mt19937_64 rng(1);
  std::normal_distribution<float> dist(0.0f, 0.3f);
  auto fill = [&](std::vector<float>& v, size_t n) {
    v.resize(n);
    for (float& x : v) x = dist(rng);
  };
  auto a = std::make_shared<NsaAdapter>();
  a->config = c;
  a->num_layers = 1;
  a->num_heads = kHeads;
  a->num_kv_heads = kKvHeads;
  a->head_dim = kHeadDim;
  a->hidden_size = kHidden;
  a->layers.resize(1);
  NsaLayerWeights& w = a->layers[0];
  const size_t l = static_cast<size_t>(c.compress_block_size), d = kHeadDim, hkv = kKvHeads, hid = static_cast<size_t>(c.mlp_hidden_size);
  for (NsaCompressor* side : {&w.k, &w.v}) {
    side->method = side == &w.k ? c.k_compress : c.v_compress;
    fill(side->pos_emb, hkv * l * d);
    if (side->method != NsaCompression::kMlp) continue;
    fill(side->w1, hkv * hid * l * d);
    fill(side->b1, hkv * hid);
    fill(side->w2, hkv * d * hid);
    fill(side->b2, hkv * d);
  }
  fill(w.mem_kv, 2 * hkv * static_cast<size_t>(c.num_mem_tokens) * d);
  fill(w.gate_w, 3 * static_cast<size_t>(kHeads) * kHidden);
  fill(w.gate_b, 3 * static_cast<size_t>(kHeads));
  return a;
}

// One sequence's layer: a paged KV cache holding `capacity` random positions, and random
// per-token q (rotated and not), un-rotated k and x for the tokens the NSA calls need.
struct Layer {
  int capacity;
  std::vector<int32_t> table;
  std::vector<float> k, v, q, qu, ku, x, out;

  explicit Layer(int cap) : capacity(cap) {
    std::mt19937_64 rng(2);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    const int blocks = (cap + kBlockSize - 1) / kBlockSize;
    table.resize(static_cast<size_t>(blocks));
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), rng);
    auto fill = [&](std::vector<float>& vec, size_t n) {
      vec.resize(n);
      for (float& f : vec) f = dist(rng);
    };
    fill(k, static_cast<size_t>(blocks) * kKvHeads * kBlockSize * kHeadDim);
    fill(v, k.size());
    fill(q, static_cast<size_t>(cap) * kHeads * kHeadDim);
    fill(qu, q.size());
    fill(ku, static_cast<size_t>(cap) * kKvHeads * kHeadDim);
    fill(x, static_cast<size_t>(cap) * kHidden);
    out.resize(q.size());
  }

  LayerAttentionCall call(int first, int n) {
    LayerAttentionCall c;
    c.layer = 0;
    c.q = &q[static_cast<size_t>(first) * kHeads * kHeadDim];
    c.num_tokens = n;
    c.first_position = first;
    c.num_heads = kHeads;
    c.num_kv_heads = kKvHeads;
    c.head_dim = kHeadDim;
    c.scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
    c.kv = PagedKvView{k.data(), v.data(), table.data(), static_cast<int>(table.size()), kBlockSize, kKvHeads, kHeadDim};
    c.out = &out[static_cast<size_t>(first) * kHeads * kHeadDim];
    return c;
  }
  NsaLayerInputs extra(int first) {
    return NsaLayerInputs{&qu[static_cast<size_t>(first) * kHeads * kHeadDim],
                          &ku[static_cast<size_t>(first) * kKvHeads * kHeadDim],
                          &x[static_cast<size_t>(first) * kHidden], kHidden};
  }
};

Layer& layer_for(int context) {
  static std::map<int, std::unique_ptr<Layer>> layers;
  auto& l = layers[context];
  if (!l) l = std::make_unique<Layer>(context + kSteps + 1);
  return *l;
}

void BM_EagerDecode(benchmark::State& state) {
  const int context = static_cast<int>(state.range(0));
  Layer& layer = layer_for(context);
  int pos = context;
  for (auto _ : state) {
    attend(layer.call(pos, 1));  // call.seq == nullptr: eager, the paged online-softmax kernel
    if (++pos == context + kSteps) pos = context;
  }
  state.counters["context"] = context;
  state.counters["keys_per_head"] = context;
}

void BM_NsaDecode(benchmark::State& state) {
  const NsaVariant& variant = kVariants[state.range(1)];
  const NsaConfig& c = variant.config;
  const int context = static_cast<int>(state.range(0));
  Layer& layer = layer_for(context);
  const std::shared_ptr<NsaAdapter> adapter = random_adapter(c);
  CompressedBlockPool pool(kKvHeads, kHeadDim);
  std::unique_ptr<NsaSequenceState> seq;
  int pos = context;
  auto prefill = [&] {
    seq = std::make_unique<NsaSequenceState>(adapter, pool);
    // The context's compressed blocks, computed as a prefill would (its attention is not needed here).
    for (int first = 0; first < context; first += 2048) {
      const int n = std::min(2048, context - first);
      nsa_update_cache(layer.call(first, n), layer.extra(first), *adapter, *seq);
    }
    pos = context;
  };
  prefill();
  for (auto _ : state) {
    nsa_attend(layer.call(pos, 1), layer.extra(pos), *adapter, *seq);
    if (++pos == context + kSteps) {
      state.PauseTiming();
      prefill();
      state.ResumeTiming();
    }
  }
  state.SetLabel(variant.name);
  state.counters["context"] = context;
  state.counters["keys_per_head"] = static_cast<double>(
      c.num_mem_tokens + c.num_compressed_blocks(context) +
      std::min<int64_t>(static_cast<int64_t>(c.num_selected_blocks) * c.selection_block_size, context) +
      std::min(c.sliding_window_size, context));
}

void register_all() {
  for (int context : kContexts) {
    benchmark::RegisterBenchmark("eager_decode", BM_EagerDecode)
        ->Arg(context)->Iterations(kSteps)->Unit(benchmark::kMicrosecond)->UseRealTime();
    for (int v = 0; v < static_cast<int>(std::size(kVariants)); ++v) {
      benchmark::RegisterBenchmark((std::string(kVariants[v].name) + "_decode").c_str(), BM_NsaDecode)
          ->Args({context, v})->Iterations(kSteps)->Unit(benchmark::kMicrosecond)->UseRealTime();
    }
  }
}

// Keeps every run's time per iteration (microseconds) by (function name, context).
class CollectingReporter : public benchmark::ConsoleReporter {
 public:
  std::map<std::pair<std::string, int>, double> us;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      const auto ctx = r.counters.find("context");
      if (ctx != r.counters.end()) us[{r.run_name.function_name, static_cast<int>(ctx->second.value)}] = r.GetAdjustedRealTime();
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

void print_summary(const CollectingReporter& rep) {
  auto get = [&](const std::string& name, int ctx) {
    const auto it = rep.us.find({name, ctx});
    return it == rep.us.end() ? NAN : it->second;
  };
  std::printf("\nAttention per decode step, one layer (H=%d, Hkv=%d, d=%d), microseconds:\n", kHeads, kKvHeads, kHeadDim);
  std::printf("%8s %12s", "context", "eager");
  for (const NsaVariant& v : kVariants) std::printf(" %12s %8s", v.name, "ratio");
  std::printf("\n");
  for (int ctx : kContexts) {
    const double e = get("eager_decode", ctx);
    std::printf("%8d %12.1f", ctx, e);
    for (const NsaVariant& v : kVariants) {
      const double n = get(std::string(v.name) + "_decode", ctx);
      std::printf(" %12.1f %7.1fx", n, e / n);
    }
    std::printf("\n");
  }
  // Least-squares time = a + b * t over the contexts: b is the cost of context growth.
  for (const NsaVariant& v : kVariants) {
    double sx = 0, sy = 0, sxx = 0, sxy = 0, n = 0;
    for (int ctx : kContexts) {
      const double y = get(std::string(v.name) + "_decode", ctx);
      if (std::isnan(y)) continue;
      sx += ctx;
      sy += y;
      sxx += static_cast<double>(ctx) * ctx;
      sxy += ctx * y;
      n += 1;
    }
    if (n < 2) continue;
    const double b = (n * sxy - sx * sy) / (n * sxx - sx * sx), a = (sy - b * sx) / n;
    std::printf("%s (s=%d, n*l'+w=%d): time ~ %.1f us + %.2f us per 1K tokens of context (%.3f us per compressed block)\n",
                v.name, v.config.compress_stride,
                v.config.num_selected_blocks * v.config.selection_block_size + v.config.sliding_window_size, a, b * 1024,
                b * v.config.compress_stride);
  }
  const double e32 = get("eager_decode", 32768);
  for (const NsaVariant& v : kVariants) {
    const double r = e32 / get(std::string(v.name) + "_decode", 32768);
    if (!std::isnan(r)) std::printf("ratio eager/%s at 32K: %.1fx (target >= 5x)\n", v.name, r);
  }
}

}  // namespace
}  // namespace hotswap

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  hotswap::register_all();
  hotswap::CollectingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  hotswap::print_summary(reporter);
  benchmark::Shutdown();
  return 0;
}
