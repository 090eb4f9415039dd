// Time per decode step against context length (1K..32K), `eager` beside `nsa`, on a
// Llama-3.2-1B-shaped model (16 layers, 32 query heads, 8 KV heads, d = 64, D = 2048), in two
// parts reported side by side:
//  * attention part: one layer's attention of one decode token (Google Benchmark runs). Each
//    prefills the context's KV cache and NSA compressed-block cache, then times single-token
//    decode steps that advance the sequence, so the NSA number includes the block compression
//    every s-th step performs;
//  * whole step: Model::forward of one decode token (every layer, LM head) on the project's
//    random bf16 checkpoint (/tmp/hotswap-bench/llama-3.2-1b, written when missing), with the
//    context's K/V random rather than computed (a real 32K prefill of a 1B model takes far too
//    long here; the step reads and multiplies as many keys as after one) and, for nsa, the
//    compressed-block cache of every layer computed from those keys and values by
//    nsa_update_cache(), as the engine's prefill does. Median of a few steps per point.
// Two NSA configurations show that the cost grows with t/s (compressed blocks) plus a constant
// n*l' + w: the summary fits attention time = a + b * t for each and prints b, which should
// halve when s doubles, and the eager / nsa ratios at 32K (attention target >= 5).
//
//   build-*/bin/nsa_bench                            # all, then the summary
//   build-*/bin/nsa_bench --benchmark_filter=32768   # one context (both parts)
//   build-*/bin/nsa_bench --whole_step=false         # attention part only
//   build-*/bin/nsa_bench --model_root=DIR           # where the checkpoint lives
//   OMP_NUM_THREADS=1 build-*/bin/nsa_bench --cpu_time  # by CPU time: fair on a busy machine
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "adapters/adapter.h"
#include "adapters/nsa_adapter.h"
#include "attention/layer_attention.h"
#include "attention/nsa/nsa_attention.h"
#include "attention/sequence_attention.h"
#include "bench_model.h"
#include "engine/attention_choice.h"
#include "kv_cache/kv_storage.h"
#include "model/forward_batch.h"
#include "model/model.h"

#ifdef _OPENMP
#include <omp.h>
#endif

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

// Uniform floats in [-amplitude, amplitude) from a xorshift stream. The timings do not depend
// on the values, and long contexts need hundreds of millions of them (std::normal_distribution
// took most of the run).
void fill_random(float* dst, size_t n, uint64_t seed, float amplitude) {
  uint64_t x = 0x9e3779b97f4a7c15ull * (seed + 1);
  const float scale = amplitude / 2147483648.0f;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    dst[i] = static_cast<float>(static_cast<int32_t>(x >> 32)) * scale;
  }
}

std::shared_ptr<NsaAdapter> random_adapter(const NsaConfig& c, int num_layers = 1) {
  uint64_t seed = 100;
  auto fill = [&](std::vector<float>& v, size_t n) {
    v.resize(n);
    fill_random(v.data(), n, seed++, 0.5f);
  };
  auto a = std::make_shared<NsaAdapter>();
  a->config = c;
  a->num_layers = num_layers;
  a->num_heads = kHeads;
  a->num_kv_heads = kKvHeads;
  a->head_dim = kHeadDim;
  a->hidden_size = kHidden;
  a->layers.resize(static_cast<size_t>(num_layers));
  const size_t l = static_cast<size_t>(c.compress_block_size), d = kHeadDim, hkv = kKvHeads, hid = static_cast<size_t>(c.mlp_hidden_size);
  for (NsaLayerWeights& w : a->layers) {
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
  }
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
    uint64_t seed = 200;
    const int blocks = (cap + kBlockSize - 1) / kBlockSize;
    table.resize(static_cast<size_t>(blocks));
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), rng);
    auto fill = [&](std::vector<float>& vec, size_t n) {
      vec.resize(n);
      fill_random(vec.data(), n, seed++, 1.0f);
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

// ---------------------------------------------------------------------------------------
// Whole decode steps: Model::forward of one token of one sequence.

int bench_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// CPU time of the whole process (every thread), seconds.
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// --cpu_time: the summary ranks by CPU time instead of wall time (the attention part by the
// main thread's, the whole step by the process's). With OMP_NUM_THREADS=1 that is the work
// itself, immune to the time slices other processes take on a shared machine.
bool g_cpu_time = false;

double load_average() {
  double one = -1;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &one) != 1) one = -1;
    std::fclose(f);
  }
  return one;
}

// Timed steps per point after one warm-up step: few at long contexts, where an eager step
// of the 1B model costs a quarter of a second or more on two cores.
int whole_step_reps(int context) {
  return context <= 4096 ? 7 : context <= 16384 ? 5 : 3;
}

volatile float g_sink;

// Median whole-step milliseconds by (name, context): "eager" and each NSA variant's name.
using StepTimes = std::map<std::pair<std::string, int>, double>;

StepTimes run_whole_steps(const std::vector<int>& contexts, const std::string& root) {
  StepTimes ms;
  if (contexts.empty()) return ms;
  const std::string dir = bench::ensure_random_model(root, "llama-3.2-1b");
  const std::unique_ptr<Model> model = Model::load(dir);
  const ModelConfig& mc = model->config();
  if (mc.num_heads != kHeads || mc.num_kv_heads != kKvHeads || mc.head_dim != kHeadDim ||
      mc.hidden_size != kHidden) {
    std::fprintf(stderr, "%s is not Llama-3.2-1B-shaped; whole steps skipped\n", dir.c_str());
    return ms;
  }
  const int layers = mc.num_layers;
  const int max_context = *std::max_element(contexts.begin(), contexts.end());
  // Every NSA variant decodes warm-up + reps positions past each context (its cache only
  // moves forward); the contexts are further apart than that.
  const int capacity = max_context + 1 + whole_step_reps(max_context);
  const int blocks = (capacity + kBlockSize - 1) / kBlockSize;
  KvStorage kv(model->kv_layout(kBlockSize, blocks));
  std::vector<int32_t> table(static_cast<size_t>(blocks));
  std::iota(table.begin(), table.end(), 0);

  double t0 = now_seconds();
  // The context's K/V: random, standing in for a prefill's (2 GiB of floats at 32K).
  const size_t layer_floats = static_cast<size_t>(blocks) * kKvHeads * kBlockSize * kHeadDim;
#pragma omp parallel for schedule(static)
  for (int l = 0; l < 2 * layers; ++l) {
    fill_random(l % 2 ? kv.values(l / 2) : kv.keys(l / 2), layer_floats, 300 + static_cast<uint64_t>(l),
                1.0f);
  }
  const double kv_seconds = now_seconds() - t0;

  struct Nsa {
    const NsaVariant* variant;
    std::shared_ptr<NsaAdapter> adapter;
    SequenceAttention attention;
    std::unique_ptr<CompressedBlockPool> pool;
    std::unique_ptr<NsaSequenceState> state;
    double fill_seconds = 0;
  };
  std::vector<Nsa> nsa;
  for (const NsaVariant& v : kVariants) {
    Nsa n;
    n.variant = &v;
    n.adapter = random_adapter(v.config, layers);
    // The sequence's attention as the engine resolves it for a request naming `nsa` with
    // this adapter (the bench keeps its own pointer to the NsaAdapter).
    AttentionChoice choice;
    std::string error;
    if (!parse_attention_choice("nsa", &choice, &error)) throw std::runtime_error(error);
    const std::shared_ptr<const Adapter> adapter =
        Adapter::make_nsa(v.name, "bench", 0, n.adapter, layers, "random nsa adapter", "{}");
    Result<SequenceAttention> resolved =
        resolve_attention(choice, adapter, ModelShape{layers, kHeads, kKvHeads, kHeadDim, kHidden, ""});
    if (!resolved) throw std::runtime_error(resolved.status().message());
    n.attention = std::move(resolved.value());
    n.pool = std::make_unique<CompressedBlockPool>(kKvHeads, kHeadDim);
    n.state = std::make_unique<NsaSequenceState>(n.adapter, *n.pool);
    nsa.push_back(std::move(n));
  }
  // Un-rotated keys for compress_rope "pre" (the engine keeps the k_proj output beside the
  // rotated keys it caches): random too, one chunk's worth reused along the context.
  constexpr int kChunk = 2048;
  std::vector<float> k_unrotated(static_cast<size_t>(kChunk) * kKvHeads * kHeadDim);
  fill_random(k_unrotated.data(), k_unrotated.size(), 400, 1.0f);
  // Brings a variant's compressed-block caches (every layer) to `context` positions, the
  // blocks computed from the cached keys and values as a prefill computes them.
  auto extend = [&](Nsa& n, int context) {
    const double start = now_seconds();
    for (int l = 0; l < layers; ++l) {
      for (int first = static_cast<int>(n.state->num_positions(l)); first < context; first += kChunk) {
        LayerAttentionCall call;
        call.layer = l;
        call.num_tokens = std::min(kChunk, context - first);
        call.first_position = first;
        call.num_heads = kHeads;
        call.num_kv_heads = kKvHeads;
        call.head_dim = kHeadDim;
        call.scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
        call.kv = PagedKvView{kv.keys(l), kv.values(l), table.data(), blocks, kBlockSize, kKvHeads, kHeadDim};
        nsa_update_cache(call, NsaLayerInputs{nullptr, k_unrotated.data(), nullptr, kHidden}, *n.adapter,
                         *n.state);
      }
    }
    n.fill_seconds += now_seconds() - start;
  };

  Workspace ws;
  int32_t token = 0;
  auto step = [&](int position, const SequenceAttention* attention, NsaSequenceState* state) {
    token = (token * 7919 + 13) % mc.vocab_size;
    ForwardBatch fb;
    SequenceChunk ch;
    ch.tokens = std::span<const int32_t>(&token, 1);
    ch.first_position = position;
    ch.block_table = table;
    ch.attention = attention;
    ch.state = state;
    ch.logits = LogitsWanted::kLast;
    fb.chunks.push_back(ch);
    const double start = g_cpu_time ? process_cpu_seconds() : now_seconds();
    const Logits logits = model->forward(fb, kv, ws);
    const double took = (g_cpu_time ? process_cpu_seconds() : now_seconds()) - start;
    g_sink = logits.data[0];
    return took * 1e3;
  };
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
  };

  std::vector<int> sorted = contexts;
  std::sort(sorted.begin(), sorted.end());
  t0 = now_seconds();
  // Contexts ascending (the NSA caches only grow); at each, eager and every variant back to
  // back, so a ratio is taken under the load of one moment.
  for (int context : sorted) {
    const int reps = whole_step_reps(context);
    std::vector<double> e;
    step(context, nullptr, nullptr);  // warm-up: scratch buffers, weights' pages
    for (int r = 0; r < reps; ++r) e.push_back(step(context + 1 + r, nullptr, nullptr));
    ms[{"eager", context}] = median(e);
    for (Nsa& n : nsa) {
      extend(n, context);
      std::vector<double> times;
      step(context, &n.attention, n.state.get());
      for (int r = 0; r < reps; ++r) times.push_back(step(context + 1 + r, &n.attention, n.state.get()));
      ms[{n.variant->name, context}] = median(times);
    }
  }
  std::printf("\nwhole steps: %s, %d layers, KV %.2f GiB f32 (random fill %.1f s); steps %.1f s", dir.c_str(),
              layers, 2.0 * layers * static_cast<double>(layer_floats) * 4 / (1u << 30), kv_seconds,
              now_seconds() - t0);
  for (const Nsa& n : nsa) std::printf("; %s compressed caches %.1f s", n.variant->name, n.fill_seconds);
  std::printf("\n");
  return ms;
}

// Keeps every run's time per iteration (microseconds; CPU time with --cpu_time) by (function
// name, context).
class CollectingReporter : public benchmark::ConsoleReporter {
 public:
  std::map<std::pair<std::string, int>, double> us;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      const auto ctx = r.counters.find("context");
      if (ctx != r.counters.end()) us[{r.run_name.function_name, static_cast<int>(ctx->second.value)}] =
          g_cpu_time ? r.GetAdjustedCPUTime() : r.GetAdjustedRealTime();
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

// The contexts the attention runs covered (what --benchmark_filter left), ascending.
std::vector<int> measured_contexts(const CollectingReporter& rep) {
  std::vector<int> out;
  for (int ctx : kContexts) {
    for (const auto& [key, us] : rep.us) {
      if (key.second == ctx) {
        out.push_back(ctx);
        break;
      }
    }
  }
  return out;
}

void print_summary(const CollectingReporter& rep, const StepTimes& steps) {
  auto get = [&](const std::string& name, int ctx) {
    const auto it = rep.us.find({name, ctx});
    return it == rep.us.end() ? NAN : it->second;
  };
  auto step = [&](const std::string& name, int ctx) {
    const auto it = steps.find({name, ctx});
    return it == steps.end() ? NAN : it->second;
  };
  std::printf(
      "\nDecode step against context, Llama-3.2-1B shape (H=%d, Hkv=%d, d=%d, D=%d), one sequence, load "
      "%.2f:\n",
      kHeads, kKvHeads, kHeadDim, kHidden, load_average());
  std::printf(
      "  attention part = one layer's attention, microseconds; whole step = Model::forward of one token\n"
      "  (all layers + LM head, bf16 weights), milliseconds, median; ratio = eager / nsa; %s, %d thread(s)\n",
      g_cpu_time ? "CPU time" : "wall time", bench_threads());
  std::printf("%8s | %10s", "", "attention");
  for (size_t i = 0; i < std::size(kVariants); ++i) std::printf(" %19s", "");
  std::printf(" | %9s\n", "whole step");
  std::printf("%8s | %10s", "context", "eager");
  for (const NsaVariant& v : kVariants) std::printf(" %10s %8s", v.name, "ratio");
  std::printf(" | %9s", "eager");
  for (const NsaVariant& v : kVariants) std::printf(" %9s %7s", v.name, "ratio");
  std::printf("\n");
  for (int ctx : kContexts) {
    const double e = get("eager_decode", ctx), es = step("eager", ctx);
    if (std::isnan(e) && std::isnan(es)) continue;
    std::printf("%8d | %10.1f", ctx, e);
    for (const NsaVariant& v : kVariants) {
      const double n = get(std::string(v.name) + "_decode", ctx);
      std::printf(" %10.1f %7.1fx", n, e / n);
    }
    std::printf(" | %9.1f", es);
    for (const NsaVariant& v : kVariants) {
      const double n = step(v.name, ctx);
      std::printf(" %9.1f %6.2fx", n, es / n);
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
    std::printf(
        "%s (s=%d, n*l'+w=%d): attention ~ %.1f us + %.2f us per 1K tokens of context (%.3f us per "
        "compressed block)\n",
        v.name, v.config.compress_stride,
        v.config.num_selected_blocks * v.config.selection_block_size + v.config.sliding_window_size, a,
        b * 1024, b * v.config.compress_stride);
  }
  const double e32 = get("eager_decode", 32768), es32 = step("eager", 32768);
  for (const NsaVariant& v : kVariants) {
    const double r = e32 / get(std::string(v.name) + "_decode", 32768);
    const double rs = es32 / step(v.name, 32768);
    if (!std::isnan(r) || !std::isnan(rs)) {
      std::printf("ratio eager/%s at 32K: attention %.1fx (target >= 5x), whole step %.2fx\n", v.name, r, rs);
    }
  }
}

}  // namespace
}  // namespace hotswap

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  bool whole_step = true;
  std::string model_root = "/tmp/hotswap-bench";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--whole_step=false" || arg == "--whole_step=0") {
      whole_step = false;
    } else if (arg == "--cpu_time" || arg == "--cpu_time=true") {
      hotswap::g_cpu_time = true;
    } else if (arg.rfind("--model_root=", 0) == 0) {
      model_root = arg.substr(std::strlen("--model_root="));
    } else {
      std::fprintf(stderr,
                   "unknown argument %s (nsa_bench takes Google Benchmark's flags, --whole_step=false, "
                   "--cpu_time and --model_root=DIR)\n",
                   arg.c_str());
      return 2;
    }
  }
  hotswap::register_all();
  hotswap::CollectingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  hotswap::StepTimes steps;
  if (whole_step) steps = hotswap::run_whole_steps(hotswap::measured_contexts(reporter), model_root);
  hotswap::print_summary(reporter, steps);
  benchmark::Shutdown();
  return 0;
}
