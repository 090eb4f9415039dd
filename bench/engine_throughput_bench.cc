// The engine's own throughput against this machine's roofline, in one run (issue 7, item 2):
//  * memory read bandwidth (GB/s): every thread sums its slice of a 1 GiB buffer with the
//    widest vectors the CPU has (as kernels_bench), best of 8 passes;
//  * f32 FMA peak (GFLOP/s): every thread runs 16 (AVX2: 12) independent register-only
//    vfmadd231ps chains in inline assembly (no loads), best of 5;
//  * per model (SmolLM2-135M and Llama-3.2-1B shapes, bf16, random weights written by the
//    project's generator into /tmp/hotswap-bench/<preset> when missing):
//      - decode steps of Model::forward with a ForwardBatch of B one-token chunks (B = 1, 4,
//        16, 64), every sequence at a context of --context tokens, logits for every sequence
//        (what the engine loop asks for); aggregate tokens/s = B / step time;
//      - batch-1 effective bandwidth = weight bytes read per decode token × tokens/s, and its
//        fraction of the measured read bandwidth;
//      - prefill of one 128- and one 512-token prompt (one chunk, logits of the last token),
//        tokens/s and model GFLOP/s (2·params per token for every projection + causal
//        attention QK^T and PV + the LM head row) as a fraction of the FMA peak.
// The decode context's K/V are not computed (the cache holds zeros there): the attention of a
// decode step reads and multiplies exactly as many keys and values as it would after a real
// prefill, which is what the timing needs, and it keeps the run short.
//
// The machine may be shared, so each rate is the best step of its point (the median is
// printed beside it), the roofline is re-measured at the end and the best of both kept, and
// every point prints the share of its wall time our threads were on a CPU: wall-time ratios
// taken while that share is low are pessimistic. Each rate is also given [by CPU time]: the
// work divided by the process's CPU time per thread, i.e. what it would take with the cores
// to itself. Those ratios hold up under contention only when waiting threads sleep instead
// of spinning (OMP_WAIT_POLICY=passive, or OMP_NUM_THREADS=1); a thread that runs alone
// meanwhile may get more memory bandwidth than its share, which flatters the bandwidth and
// batch-1 decode alike, so their ratio stays fair.
//
//   engine_throughput_bench [--presets smollm2-135m,llama-3.2-1b] [--root /tmp/hotswap-bench]
//                           [--context 128] [--batches 1,4,16,64] [--prompts 128,512]
//                           [--min-time 1.5] [--prefill-reps 2] [--bf16-dot]
// --bf16-dot runs linear() with LinearPrecision::kBf16Dot (vdpbf16ps for m >= 16), which the
// engine does not use by default: a what-if for batched decode and prefill.
#include <immintrin.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <new>
#include <numeric>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/isa.h"
#include "kernels/linear.h"
#include "kv_cache/kv_storage.h"
#include "model/forward_batch.h"
#include "model/model.h"
#include "model/random_model.h"

#ifdef _OPENMP
#include <omp.h>
#endif

// GCC 12's AVX-512 intrinsics self-initialise "undefined" operands; -Wuninitialized flags them.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace hotswap {
namespace {

using kernels::Isa;

// ---------------------------------------------------------------------------------------
// Clocks and threads.

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double process_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

int bench_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

template <typename Body>
void on_all_threads(const Body& body) {
#ifdef _OPENMP
#pragma omp parallel
  body(omp_get_thread_num(), omp_get_num_threads());
#else
  body(0, 1);
#endif
}

double load_average() {
  double load = -1;
  if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &load) != 1) load = -1;
    std::fclose(f);
  }
  return load;
}

// Share of a region's wall time that this process's threads were on a CPU.
class CpuShare {
 public:
  CpuShare() : wall_(now_seconds()), cpu_(process_cpu_seconds()) {}
  double share() const {
    return (process_cpu_seconds() - cpu_) / ((now_seconds() - wall_) * bench_threads());
  }

 private:
  double wall_, cpu_;
};

// Wall and process CPU time of one timed region. The CPU-time rate divides the work by the
// CPU time per thread (process CPU seconds / threads): what the region would take with the
// cores to itself. It is a second opinion for a shared machine, not the headline figure:
// threads that wait at a barrier for a descheduled peer spin (counted), and a thread that
// runs alone meanwhile may get more than its share of memory bandwidth (flattering).
struct Elapsed {
  double wall = 0, cpu = 0;
};

class Stopwatch {
 public:
  Stopwatch() : wall_(now_seconds()), cpu_(process_cpu_seconds()) {}
  Elapsed elapsed() const {
    return {now_seconds() - wall_, (process_cpu_seconds() - cpu_) / bench_threads()};
  }

 private:
  double wall_, cpu_;
};

// Best rates of a roofline measurement: by wall time and by CPU time per thread.
struct Rate {
  double wall = 0, cpu = 0;
  void keep(double amount, Elapsed e) {
    wall = std::max(wall, amount / e.wall);
    cpu = std::max(cpu, amount / e.cpu);
  }
  void keep(const Rate& r) {
    wall = std::max(wall, r.wall);
    cpu = std::max(cpu, r.cpu);
  }
};

// ---------------------------------------------------------------------------------------
// Roofline: read bandwidth (the approach of kernels_bench.cc).

struct AlignedDelete {
  void operator()(void* p) const { ::operator delete (p, std::align_val_t{64}); }
};
using AlignedBytes = std::unique_ptr<uint8_t, AlignedDelete>;
AlignedBytes aligned_bytes(size_t n) {
  return AlignedBytes(static_cast<uint8_t*>(::operator new (n, std::align_val_t{64})));
}

template <bool kPrefetch>
__attribute__((target("avx512f"))) float sum_avx512(const float* p, size_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 64 <= n; i += 64) {
    if constexpr (kPrefetch) _mm_prefetch(reinterpret_cast<const char*>(p + i + 512), _MM_HINT_T0);
    a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
    a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
    a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
    a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

template <bool kPrefetch>
__attribute__((target("avx2"))) float sum_avx2(const float* p, size_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 32 <= n; i += 32) {
    if (kPrefetch && i % 64 == 0) _mm_prefetch(reinterpret_cast<const char*>(p + i + 512), _MM_HINT_T0);
    a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
    a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
  }
  alignas(32) float t[8];
  _mm256_store_ps(t, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

float sum_scalar(const float* p, size_t n) {
  float a[4] = {};
  for (size_t i = 0; i + 4 <= n; i += 4)
    for (int j = 0; j < 4; ++j) a[j] += p[i + j];
  return a[0] + a[1] + a[2] + a[3];
}

template <bool kPrefetch>
float sum_best(const float* p, size_t n) {
  switch (kernels::best_supported_isa()) {
    case Isa::kAvx512:
      return sum_avx512<kPrefetch>(p, n);
    case Isa::kAvx2:
      return sum_avx2<kPrefetch>(p, n);
    case Isa::kScalar:
      break;
  }
  return sum_scalar(p, n);
}

volatile float g_sink[256];

Rate measure_read_bandwidth() {
  constexpr size_t kBytes = size_t{1} << 30, kFloats = kBytes / 4;
  AlignedBytes buf = aligned_bytes(kBytes);
  auto* f = reinterpret_cast<float*>(buf.get());
  auto slice = [&](int t, int nt) {
    return std::pair<size_t, size_t>{kFloats * t / nt, kFloats * (t + 1) / nt};
  };
  on_all_threads([&](int t, int nt) {
    auto [b, e] = slice(t, nt);
    std::fill(f + b, f + e, 1.0f);
  });
  Rate best;
  for (int rep = 0; rep < 8; ++rep) {
    const Stopwatch sw;
    on_all_threads([&](int t, int nt) {
      auto [b, e] = slice(t, nt);
      const size_t n = (e - b) / 64 * 64;
      g_sink[t % 256] = rep % 2 ? sum_best<true>(f + b, n) : sum_best<false>(f + b, n);
    });
    best.keep(kBytes / 1e9, sw.elapsed());
  }
  return best;
}

// ---------------------------------------------------------------------------------------
// Roofline: f32 FMA peak (register-only FMA chains; the loop has no loads).

constexpr int64_t kFmaIters = int64_t{1} << 22;

__attribute__((target("avx512f"))) void fma_loop_avx512(int64_t iters) {
  __asm__ volatile(
      "vpxord %%zmm16, %%zmm16, %%zmm16\n"
      "vpxord %%zmm17, %%zmm17, %%zmm17\n"
      "1:\n"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm0\n"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm1\n"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm2\n"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm3\n"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm4\n"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm5\n"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm6\n"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm7\n"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm8\n"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm9\n"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm10\n"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm11\n"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm12\n"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm13\n"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm14\n"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm15\n"
      "dec %0\n"
      "jnz 1b\n"
      : "+r"(iters)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "cc");
}

__attribute__((target("avx2,fma"))) void fma_loop_avx2(int64_t iters) {
  __asm__ volatile(
      "vxorps %%ymm12, %%ymm12, %%ymm12\n"
      "vxorps %%ymm13, %%ymm13, %%ymm13\n"
      "1:\n"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm0\n"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm1\n"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm2\n"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm3\n"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm4\n"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm5\n"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm6\n"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm7\n"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm8\n"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm9\n"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm10\n"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm11\n"
      "dec %0\n"
      "jnz 1b\n"
      : "+r"(iters)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm12", "xmm13", "cc");
}

Rate measure_fma_peak() {
  const Isa isa = kernels::best_supported_isa();
  if (isa == Isa::kScalar) return {};
  const bool wide = isa == Isa::kAvx512;
  const double flops_per_iter = wide ? 16.0 * 16 * 2 : 12.0 * 8 * 2;
  Rate best;
  for (int rep = 0; rep < 5; ++rep) {
    const Stopwatch sw;
    on_all_threads([&](int, int) {
      if (wide)
        fma_loop_avx512(kFmaIters);
      else
        fma_loop_avx2(kFmaIters);
    });
    best.keep(bench_threads() * flops_per_iter * kFmaIters / 1e9, sw.elapsed());
  }
  return best;
}

// ---------------------------------------------------------------------------------------
// Options.

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

std::vector<int> split_ints(const std::string& s) {
  std::vector<int> out;
  for (const auto& item : split(s)) out.push_back(std::atoi(item.c_str()));
  return out;
}

struct Options {
  std::vector<std::string> presets = {"smollm2-135m", "llama-3.2-1b"};
  std::string root = "/tmp/hotswap-bench";
  int context = 128;
  std::vector<int> batches = {1, 4, 16, 64};
  std::vector<int> prompts = {128, 512};
  double min_time = 1.5;  // seconds of timed decode steps per point (at least 3 steps)
  int max_steps = 24;     // timed decode steps per point at most
  int prefill_reps = 2;   // timed prefills per prompt length, after one warm-up
  bool bf16_dot = false;  // LinearPrecision::kBf16Dot (not the engine's default) for m >= 16
};

bool parse_options(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--help" || k == "-h") return false;
    if (k == "--bf16-dot") {
      o.bf16_dot = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s needs a value\n", k.c_str());
      return false;
    }
    const std::string v = argv[++i];
    if (k == "--presets") o.presets = split(v);
    else if (k == "--root") o.root = v;
    else if (k == "--context") o.context = std::atoi(v.c_str());
    else if (k == "--batches") o.batches = split_ints(v);
    else if (k == "--prompts") o.prompts = split_ints(v);
    else if (k == "--min-time") o.min_time = std::atof(v.c_str());
    else if (k == "--max-steps") o.max_steps = std::atoi(v.c_str());
    else if (k == "--prefill-reps") o.prefill_reps = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Model accounting.

// Bytes of weights one decode token reads: every layer tensor, the final norm, the LM head
// (all of it: every vocabulary row is scored) and one embedding row.
double weight_bytes_per_token(const Model& m) {
  const ModelWeights& w = m.weights();
  double bytes = 0;
  for (const LayerWeights& l : w.layers) {
    for (const TensorView* t : {&l.input_norm, &l.q_proj, &l.k_proj, &l.v_proj, &l.q_bias, &l.k_bias, &l.v_bias,
                                &l.o_proj, &l.o_bias, &l.post_attention_norm, &l.gate_proj, &l.up_proj,
                                &l.down_proj, &l.gate_bias, &l.up_bias, &l.down_bias})
      if (!t->empty()) bytes += static_cast<double>(t->nbytes());
  }
  bytes += static_cast<double>(w.final_norm.nbytes() + w.lm_head.nbytes());
  bytes += static_cast<double>(w.embed_tokens.nbytes()) / static_cast<double>(w.embed_tokens.rows());
  return bytes;
}

// Multiply-adds of the layer projections per token (the LM head is counted separately).
double layer_params(const Model& m) {
  double n = 0;
  for (const LayerWeights& l : m.weights().layers)
    for (const TensorView* t : {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj})
      n += static_cast<double>(t->numel());
  return n;
}

// FLOPs of a prefill of P tokens from position 0 with logits for the last one.
double prefill_flops(const Model& m, int P) {
  const ModelConfig& c = m.config();
  const double p = P;
  const double projections = 2.0 * layer_params(m) * p;
  // Query i sees i + 1 keys: QK^T and PV are 2·d FLOPs per key each, for every query head.
  const double attention = 4.0 * c.head_dim * c.num_heads * c.num_layers * (p * (p + 1) / 2);
  const double lm_head = 2.0 * static_cast<double>(m.weights().lm_head.numel());
  return projections + attention + lm_head;
}

// ---------------------------------------------------------------------------------------
// Timing of forward steps.

struct Timing {
  std::vector<double> seconds;      // wall time of each timed step
  std::vector<double> cpu_seconds;  // process CPU time / threads of each timed step
  double cpu_share = 0;
  void add(Elapsed e) {
    seconds.push_back(e.wall);
    cpu_seconds.push_back(e.cpu);
  }
  double best() const { return *std::min_element(seconds.begin(), seconds.end()); }
  double best_cpu() const { return *std::min_element(cpu_seconds.begin(), cpu_seconds.end()); }
  double median() const {
    std::vector<double> s = seconds;
    std::sort(s.begin(), s.end());
    return s.size() % 2 ? s[s.size() / 2] : 0.5 * (s[s.size() / 2 - 1] + s[s.size() / 2]);
  }
};

uint32_t g_rng = 12345;
int32_t random_token(int vocab) {
  g_rng = g_rng * 1664525u + 1013904223u;
  return static_cast<int32_t>((g_rng >> 8) % static_cast<uint32_t>(vocab));
}

class ModelBench {
 public:
  ModelBench(const Model& model, const Options& o) : model_(model), opt_(o) {
    const int max_batch = *std::max_element(o.batches.begin(), o.batches.end());
    const int max_prompt = o.prompts.empty() ? 0 : *std::max_element(o.prompts.begin(), o.prompts.end());
    // Every decode sequence needs its context, the warm-up step and kStepCycle decode
    // positions; the prefill sequence has blocks of its own after them.
    const int64_t decode_blocks = (o.context + 1 + kStepCycle + kBlock - 1) / kBlock;
    const int64_t prefill_blocks = (max_prompt + kBlock - 1) / kBlock;
    kv_ = std::make_unique<KvStorage>(model.kv_layout(kBlock, max_batch * decode_blocks + prefill_blocks));
    tables_.resize(max_batch);
    for (int s = 0; s < max_batch; ++s) {
      tables_[s].resize(decode_blocks);
      std::iota(tables_[s].begin(), tables_[s].end(), static_cast<int32_t>(s * decode_blocks));
    }
    prefill_table_.resize(prefill_blocks);
    std::iota(prefill_table_.begin(), prefill_table_.end(), static_cast<int32_t>(max_batch * decode_blocks));
  }

  // Decode steps of `batch` sequences, each at position context + step.
  Timing decode(int batch) {
    const int vocab = model_.config().vocab_size;
    std::vector<int32_t> tokens(batch);
    auto step = [&](int position) {
      ForwardBatch fb;
      for (int s = 0; s < batch; ++s) {
        tokens[s] = random_token(vocab);
        SequenceChunk ch;
        ch.tokens = std::span<const int32_t>(&tokens[s], 1);
        ch.first_position = position;
        ch.block_table = tables_[s];
        ch.logits = LogitsWanted::kLast;
        fb.chunks.push_back(ch);
      }
      const Stopwatch sw;
      Logits logits = model_.forward(fb, *kv_, ws_);
      const Elapsed e = sw.elapsed();
      g_sink[0] = logits.data[0];
      return e;
    };
    step(opt_.context);  // warm-up: scratch buffers grow, weights and KV pages are touched
    Timing t;
    CpuShare share;
    double total = 0;
    for (int i = 0; i < opt_.max_steps && (i < 3 || total < opt_.min_time); ++i) {
      t.add(step(opt_.context + 1 + i % kStepCycle));
      total += t.seconds.back();
    }
    t.cpu_share = share.share();
    return t;
  }

  // Prefill of one prompt of P tokens from position 0 (logits of the last token).
  Timing prefill(int P) {
    const int vocab = model_.config().vocab_size;
    std::vector<int32_t> prompt(P);
    auto run = [&]() {
      for (auto& id : prompt) id = random_token(vocab);
      ForwardBatch fb;
      SequenceChunk ch;
      ch.tokens = prompt;
      ch.first_position = 0;
      ch.block_table = prefill_table_;
      ch.logits = LogitsWanted::kLast;
      fb.chunks.push_back(ch);
      const Stopwatch sw;
      Logits logits = model_.forward(fb, *kv_, ws_);
      const Elapsed e = sw.elapsed();
      g_sink[0] = logits.data[0];
      return e;
    };
    // Warm-up once (weights, scratch); later, longer prompts only grow the scratch buffers.
    if (!prefill_warm_) run();
    prefill_warm_ = true;
    Timing t;
    CpuShare share;
    for (int i = 0; i < opt_.prefill_reps; ++i) t.add(run());
    t.cpu_share = share.share();
    return t;
  }

 private:
  static constexpr int kBlock = 16;
  // Decode steps cycle over this many positions after the context (later steps overwrite the
  // K/V of earlier ones), so a long run keeps the context it was asked for.
  static constexpr int kStepCycle = 32;
  const Model& model_;
  const Options& opt_;
  std::unique_ptr<KvStorage> kv_;
  std::vector<std::vector<int32_t>> tables_;
  std::vector<int32_t> prefill_table_;
  bool prefill_warm_ = false;
  Workspace ws_;
};

// ---------------------------------------------------------------------------------------
// The run.

// Rates of one model; "cpu" = by CPU time per thread (see Stopwatch).
struct ModelSummary {
  std::string preset;
  double gb_per_token = 0;
  std::map<int, double> decode_tps, decode_tps_cpu;    // batch -> best aggregate tokens/s
  std::map<int, double> prefill_tps, prefill_tps_cpu;  // prompt -> best tokens/s
  std::map<int, double> prefill_gflop;                 // prompt -> GFLOP per prefill
};

std::string ensure_model(const Options& o, const std::string& preset) {
  const std::string dir = o.root + "/" + preset;
  if (!std::filesystem::exists(dir + "/model.safetensors")) {
    const double t0 = now_seconds();
    write_random_model(random_model_preset(preset), dir);
    std::printf("generated %s in %.1f s\n", dir.c_str(), now_seconds() - t0);
  }
  return dir;
}

ModelSummary bench_model(const Options& o, const std::string& preset) {
  const std::string dir = ensure_model(o, preset);
  auto model = Model::load(dir);
  const ModelConfig& c = model->config();
  ModelSummary sum;
  sum.preset = preset;
  sum.gb_per_token = weight_bytes_per_token(*model) / 1e9;
  const double kv_mb = 2.0 * c.num_layers * c.num_kv_heads * c.head_dim * 4.0 * (o.context + 1) / 1e6;
  std::printf("\n== %s: %s, %d layers, D %d, I %d, H %d/%d, vocab %d, %s weights ==\n", preset.c_str(), dir.c_str(),
              c.num_layers, c.hidden_size, c.intermediate_size, c.num_heads, c.num_kv_heads, c.vocab_size,
              std::string(dtype_name(model->weights().dominant_dtype())).c_str());
  std::printf("weights read per decode token: %.3f GB (+ %.1f MB of f32 K/V at context %d)\n", sum.gb_per_token,
              kv_mb, o.context);
  std::fflush(stdout);

  ModelBench bench(*model, o);
  std::printf("decode (one token per sequence per step, context %d, logits for every sequence):\n", o.context);
  std::printf("  %5s %5s %9s %9s %11s %11s %11s %5s\n", "batch", "steps", "best ms", "median ms", "tok/s best",
              "tok/s med", "tok/s cpu", "cpu");
  for (int b : o.batches) {
    const Timing t = bench.decode(b);
    sum.decode_tps[b] = b / t.best();
    sum.decode_tps_cpu[b] = b / t.best_cpu();
    std::printf("  %5d %5zu %9.2f %9.2f %11.1f %11.1f %11.1f %4.0f%%\n", b, t.seconds.size(), 1e3 * t.best(),
                1e3 * t.median(), b / t.best(), b / t.median(), b / t.best_cpu(), 100 * t.cpu_share);
    std::fflush(stdout);
  }
  std::printf("prefill (one sequence from position 0, one chunk, logits for the last token):\n");
  std::printf("  %6s %4s %9s %9s %11s %11s %9s %9s %5s\n", "prompt", "reps", "best ms", "median ms", "tok/s best",
              "tok/s cpu", "GFLOP/s", "[cpu]", "cpu");
  for (int p : o.prompts) {
    const Timing t = bench.prefill(p);
    const double gflop = prefill_flops(*model, p) / 1e9;
    sum.prefill_tps[p] = p / t.best();
    sum.prefill_tps_cpu[p] = p / t.best_cpu();
    sum.prefill_gflop[p] = gflop;
    std::printf("  %6d %4zu %9.1f %9.1f %11.1f %11.1f %9.1f %9.1f %4.0f%%\n", p, t.seconds.size(),
                1e3 * t.best(), 1e3 * t.median(), p / t.best(), p / t.best_cpu(), gflop / t.best(),
                gflop / t.best_cpu(), 100 * t.cpu_share);
    std::fflush(stdout);
  }
  return sum;
}

int run(const Options& o) {
  const CpuShare whole;
  const double t_start = now_seconds();
  if (o.bf16_dot) kernels::set_linear_precision(kernels::LinearPrecision::kBf16Dot);
  const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
  std::printf("engine_throughput_bench: %d threads (OMP_WAIT_POLICY=%s), best ISA %s (avx512_bf16: %s), "
              "linear() path %s%s, load average %.2f\n",
              bench_threads(), wait_policy ? wait_policy : "unset", kernels::isa_name(kernels::best_supported_isa()),
              kernels::cpu_has_avx512_bf16() ? "yes" : "no", kernels::linear_isa(),
              o.bf16_dot ? " (--bf16-dot: bf16 products for m >= 16, not the engine's default)" : "", load_average());
  const char* fma_how = kernels::best_supported_isa() == Isa::kAvx512 ? "zmm, 16 independent chains per thread"
                                                                      : "ymm, 12 independent chains per thread";
  Rate bandwidth = measure_read_bandwidth();
  Rate peak = measure_fma_peak();
  std::printf("memory read bandwidth: %.1f GB/s (1 GiB sum, all threads, best of 8; by CPU time %.1f)\n",
              bandwidth.wall, bandwidth.cpu);
  std::printf("f32 FMA peak: %.1f GFLOP/s (register-only vfmadd231ps loop, %s, all threads, best of 5; by CPU time %.1f)\n",
              peak.wall, fma_how, peak.cpu);
  std::fflush(stdout);

  std::vector<ModelSummary> models;
  for (const auto& preset : o.presets) models.push_back(bench_model(o, preset));

  // The roofline once more, after the models: best of both measurements.
  const Rate bw2 = measure_read_bandwidth(), peak2 = measure_fma_peak();
  bandwidth.keep(bw2);
  peak.keep(peak2);

  const auto pct = [](double a, double b) { return b > 0 ? 100 * a / b : 0.0; };
  std::printf("\n== summary: best step of each point vs best roofline measurement, by wall time [by CPU time] ==\n");
  std::printf("memory read bandwidth %.1f GB/s [%.1f] (end of run: %.1f); f32 FMA peak %.1f GFLOP/s [%.1f] (end of run: %.1f)\n",
              bandwidth.wall, bandwidth.cpu, bw2.wall, peak.wall, peak.cpu, peak2.wall);
  for (const ModelSummary& m : models) {
    std::printf("%s:\n", m.preset.c_str());
    if (m.decode_tps.count(1)) {
      const double gbs = m.gb_per_token * m.decode_tps.at(1), gbs_cpu = m.gb_per_token * m.decode_tps_cpu.at(1);
      std::printf("  batch-1 decode %.2f tok/s x %.3f GB/token = %.1f GB/s = %.1f%% of read bandwidth "
                  "[%.1f GB/s = %.1f%%] (target >= 85%%)\n",
                  m.decode_tps.at(1), m.gb_per_token, gbs, pct(gbs, bandwidth.wall), gbs_cpu, pct(gbs_cpu, bandwidth.cpu));
    }
    std::printf("  decode aggregate tok/s:");
    for (const auto& [b, tps] : m.decode_tps) std::printf("  b%d %.1f [%.1f]", b, tps, m.decode_tps_cpu.at(b));
    std::printf("\n");
    if (m.decode_tps.count(1) && m.decode_tps.count(16))
      std::printf("  batch-16 / batch-1 = %.2fx [%.2fx] (target >= 6)\n", m.decode_tps.at(16) / m.decode_tps.at(1),
                  m.decode_tps_cpu.at(16) / m.decode_tps_cpu.at(1));
    for (const auto& [p, tps] : m.prefill_tps) {
      const double gflops = m.prefill_gflop.at(p) * tps / p, gflops_cpu = m.prefill_gflop.at(p) * m.prefill_tps_cpu.at(p) / p;
      std::printf("  prefill %d: %.1f tok/s, %.1f GFLOP/s = %.1f%% of f32 FMA peak [%.1f GFLOP/s = %.1f%%]%s\n", p,
                  tps, gflops, pct(gflops, peak.wall), gflops_cpu, pct(gflops_cpu, peak.cpu),
                  p == 512 ? " (target >= 50%)" : "");
    }
  }
  const double share = whole.share();
  std::printf("run: %.0f s wall, our threads on a CPU %.0f%% of it, load average now %.2f\n",
              now_seconds() - t_start, 100 * share, load_average());
  if (share < 0.6)
    std::printf("note: other processes held the CPUs for much of the run; the wall-time ratios are pessimistic. The\n"
                "      [CPU time] ratios are meaningful only if waiting threads do not spin: run with\n"
                "      OMP_WAIT_POLICY=passive (or OMP_NUM_THREADS=1) on a shared machine.\n");
  return 0;
}

}  // namespace
}  // namespace hotswap

int main(int argc, char** argv) {
  hotswap::Options o;
  if (!hotswap::parse_options(argc, argv, o)) {
    std::fprintf(stderr,
                 "usage: engine_throughput_bench [--presets smollm2-135m,llama-3.2-1b] [--root /tmp/hotswap-bench]\n"
                 "         [--context 128] [--batches 1,4,16,64] [--prompts 128,512] [--min-time 1.5]\n"
                 "         [--max-steps 24] [--prefill-reps 2] [--bf16-dot]\n");
    return 2;
  }
  if (o.batches.empty() || o.presets.empty()) return 2;
  try {
    return hotswap::run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "engine_throughput_bench: %s\n", e.what());
    return 1;
  }
}
