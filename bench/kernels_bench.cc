// Kernel throughput against this machine's roofline.
//  * memory read bandwidth (GB/s): all threads sum a 1 GiB buffer with the widest vectors
//    the CPU has, timed per 32 MiB window, best window; the ceiling for batch-1 decode GEMV.
//  * float32 FMA peak (GFLOP/s): every thread runs 16 independent register-only FMA chains
//    (inline assembly, no loads), best of many ~1 ms runs; the ceiling for batched GEMM.
//  * linear(): GEMV reports weight GB/s and its fraction of the read bandwidth; GEMM reports
//    GFLOP/s and its fraction of the FMA peak. Weights rotate over copies totalling >= 4x
//    the L3 size, so GEMV streams from DRAM as in a real multi-layer model.
// The machine may be shared (other jobs compiling on the same 2 cores), so each rate is the
// best call of the run, and the summary printed at the end compares best with best. It also
// prints the load average and the share of the run's wall time our threads were on a CPU:
// ratios taken while that share is low are not meaningful (a longer --benchmark_min_time
// gives every case more chances of an undisturbed call).
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/bf16_packed.h"
#include "kernels/isa.h"
#include "roofline.h"
#include "kernels/linear.h"
#include "kernels/rms_norm.h"
#include "kernels/silu_mul.h"

// GCC 12's AVX-512 intrinsics self-initialise "undefined" operands; -Wuninitialized flags them.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace hotswap::kernels {
namespace {

using bench::bench_threads;
using bench::now_seconds;
using bench::on_all_threads;
using bench::process_cpu_seconds;

// Rate of one timed region, best of several: amount / wall seconds, and amount per CPU
// second of this process. The second is immune to time slices lost to other processes, so
// the summary reports it for the arithmetic-bound cases (GEMM, FMA peak) — single-threaded
// runs only: Linux does not fold the current slice of threads running on other CPUs into
// the process CPU clock, so with several threads short regions read too little CPU time.
class BestRate {
 public:
  void start() {
    wall0_ = now_seconds();
    cpu0_ = process_cpu_seconds();
  }
  void stop(double amount, int threads) {
    best_wall_ = std::max(best_wall_, amount / (now_seconds() - wall0_));
    const double cpu = (process_cpu_seconds() - cpu0_) / threads;
    if (cpu > 0) best_cpu_ = std::max(best_cpu_, amount / cpu);
  }
  double wall() const { return best_wall_; }
  double cpu() const { return best_cpu_; }

 private:
  double wall0_ = 0, cpu0_ = 0, best_wall_ = 0, best_cpu_ = 0;
};

struct AlignedDelete {
  void operator()(void* p) const { ::operator delete (p, std::align_val_t{64}); }
};
using AlignedBytes = std::unique_ptr<uint8_t, AlignedDelete>;
AlignedBytes aligned_bytes(size_t n) {
  return AlignedBytes(static_cast<uint8_t*>(::operator new (n, std::align_val_t{64})));
}

// ---------------------------------------------------------------------------------------
// Roofline (bench/roofline.h): read bandwidth timed in 32 MiB windows over a 1 GiB buffer (so
// every window streams from DRAM), 4 passes: 128 samples of the size of one 8192 x 2048 BF16
// GEMV call, so that on a shared machine the best window and the best GEMV call have similar
// odds of running undisturbed. FMA peak: best of 64 samples of ~1 ms.

double measure_read_bandwidth() {
  static bench::ReadBandwidthProbe probe;
  return probe.best_window(size_t{32} << 20, 4).wall;
}

// GB/s, best seen so far (measured again before the summary).
double read_bandwidth(bool remeasure = false) {
  static double best = 0;
  if (best == 0 || remeasure) best = std::max(best, measure_read_bandwidth());
  return best;
}

// {wall, cpu} GFLOP/s.
std::pair<double, double> measure_fma_peak() {
  const bench::Rate r = bench::measure_fma_peak(64, int64_t{1} << 18);
  return {r.wall, r.cpu};
}

// GFLOP/s, best seen so far (measured again before the summary).
std::pair<double, double> fma_peak(bool remeasure = false) {
  static std::pair<double, double> best;
  if (best.first == 0 || remeasure) {
    const auto [wall, cpu] = measure_fma_peak();
    best = {std::max(best.first, wall), std::max(best.second, cpu)};
  }
  return best;
}

// ---------------------------------------------------------------------------------------
// Results kept for the summary printed after the run.

struct Result {
  double wall = 0, cpu = 0;
  const char* unit = "";  // "GB/s": compared with the read bandwidth; "GFLOP/s": with the FMA peak
};
std::map<std::string, Result>& results() {
  static std::map<std::string, Result> r;
  return r;
}

void BM_MemoryReadBandwidth(benchmark::State& state) {
  double r = 0;
  for (auto _ : state) r = read_bandwidth();
  state.counters["GB/s"] = r;
  state.counters["threads"] = bench_threads();
}

void BM_FmaPeak(benchmark::State& state) {
  std::pair<double, double> r;
  for (auto _ : state) r = fma_peak();
  state.counters["GFLOP/s"] = r.first;
  if (bench_threads() == 1) state.counters["GFLOP/s_cpu"] = r.second;
  state.counters["threads"] = bench_threads();
}

// ---------------------------------------------------------------------------------------
// linear().

struct WeightCopies {
  std::vector<AlignedBytes> buffers;
  std::vector<TensorView> views;
};

// Random weights in [-1, 1), as many copies as needed to exceed 128 MiB in total.
const WeightCopies& weights(DType dtype, int64_t n, int64_t k) {
  static std::map<std::tuple<DType, int64_t, int64_t>, WeightCopies> cache;
  WeightCopies& w = cache[{dtype, n, k}];
  if (!w.views.empty()) return w;
  const size_t bytes = static_cast<size_t>(n * k) * dtype_size(dtype);
  const size_t copies = std::max<size_t>(1, ((size_t{128} << 20) + bytes - 1) / bytes);
  uint32_t state = 12345;
  for (size_t c = 0; c < copies; ++c) {
    w.buffers.push_back(aligned_bytes(bytes));
    uint8_t* p = w.buffers.back().get();
    for (int64_t i = 0; i < n * k; ++i) {
      state = state * 1664525u + 1013904223u;
      const float v = static_cast<float>(state >> 8) / 8388608.0f - 1.0f;
      if (dtype == DType::kF32) {
        std::memcpy(p + i * 4, &v, 4);
      } else {
        const uint16_t h = dtype == DType::kBF16 ? f32_to_bf16(v) : f32_to_f16(v);
        std::memcpy(p + i * 2, &h, 2);
      }
    }
    w.views.push_back(TensorView{dtype, {n, k}, p});
  }
  return w;
}

struct LinearCase {
  int64_t m, n, k;
  DType dtype;
  Isa isa;
  LinearPrecision precision = LinearPrecision::kF32;
  bool packed = false;  // linear_bf16_packed() on W packed at load (AMX), as the model runs it
};

// `w` packed for linear_bf16_packed(), in copies totalling >= 1 GiB: batched decode with
// packed weights is bound by reading them from DRAM, and this host's L3 can hold 128 MiB.
const std::vector<Bf16Packed>& packed_copies(const WeightCopies& w) {
  static std::map<const WeightCopies*, std::pair<std::vector<AlignedBytes>, std::vector<Bf16Packed>>> cache;
  auto& [buffers, copies] = cache[&w];
  if (!copies.empty()) return copies;
  const TensorView& v = w.views.front();
  const size_t bytes = static_cast<size_t>(bf16_packed_words(v.shape[0], v.shape[1])) * 4;
  const size_t count = std::max<size_t>(1, ((size_t{1} << 30) + bytes - 1) / bytes);
  for (size_t c = 0; c < count; ++c) {
    buffers.push_back(aligned_bytes(bytes));
    auto* words = reinterpret_cast<uint32_t*>(buffers.back().get());
    if (c == 0)
      pack_bf16_weights(v, words);
    else
      std::memcpy(words, buffers.front().get(), bytes);
    copies.push_back(Bf16Packed{words, v.shape[0], v.shape[1]});
  }
  return copies;
}

std::string case_name(const LinearCase& c) {
  const std::string dt(dtype_name(c.dtype));
  std::string name = c.m == 1 ? "gemv" : "gemm_m" + std::to_string(c.m);
  name += "/" + dt + "/n" + std::to_string(c.n) + "_k" + std::to_string(c.k) + "/" + isa_name(c.isa);
  if (c.precision == LinearPrecision::kBf16Dot) name += "_bf16dot";
  if (c.packed) name += "_packed";
  return name;
}

void BM_Linear(benchmark::State& state, LinearCase c) {
  if (set_active_isa(c.isa) != c.isa) {
    state.SkipWithError("ISA not supported on this CPU");
    return;
  }
  set_linear_precision(c.precision);
  const WeightCopies& w = weights(c.dtype, c.n, c.k);
  if (c.packed && !bf16_packed_applies()) {
    state.SkipWithError("packed bf16 needs AMX");
    return;
  }
  const std::vector<Bf16Packed>* packed = c.packed ? &packed_copies(w) : nullptr;  // packed before the timing
  const size_t copies = packed != nullptr ? packed->size() : w.views.size();
  std::vector<float> x(static_cast<size_t>(c.m * c.k)), y(static_cast<size_t>(c.m * c.n));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 97) / 97.0f - 0.5f;
  const double bytes = static_cast<double>(c.n * c.k) * dtype_size(c.dtype);
  const double flops = 2.0 * static_cast<double>(c.m * c.n * c.k);
  const double amount = (c.m == 1 ? bytes : flops) / 1e9;
  size_t copy = 0;
  BestRate rate;
  for (auto _ : state) {
    rate.start();
    if (packed != nullptr) {
      linear_bf16_packed(x.data(), c.m, (*packed)[copy], nullptr, y.data());
    } else {
      linear(x.data(), c.m, w.views[copy], nullptr, y.data());
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    rate.stop(amount, bench_threads());
    copy = (copy + 1) % copies;
  }
  // The time column is the mean call; the counters are the best call.
  state.counters[c.m == 1 ? "GB/s_best" : "GFLOP/s_best"] = rate.wall();
  if (c.m > 1 && bench_threads() == 1) state.counters["GFLOP/s_cpu"] = rate.cpu();
  state.SetLabel(linear_isa());
  Result& r = results()[case_name(c)];
  r.wall = std::max(r.wall, rate.wall());
  r.cpu = std::max(r.cpu, rate.cpu());
  r.unit = c.m == 1 ? "GB/s" : "GFLOP/s";
  set_active_isa(best_supported_isa());
  set_linear_precision(LinearPrecision::kF32);
}

// ---------------------------------------------------------------------------------------
// Element-wise helpers, bytes moved per second (float32 in and out).

void BM_SiluMul(benchmark::State& state, Isa isa) {
  set_active_isa(isa);
  const int64_t n = state.range(0);
  std::vector<float> gate(static_cast<size_t>(n), 0.3f), up(gate.size(), -1.2f), out(gate.size());
  for (auto _ : state) {
    silu_mul(gate.data(), up.data(), out.data(), n);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * n * 12);
  state.SetLabel(isa_name(active_isa()));
  set_active_isa(best_supported_isa());
}

void BM_RmsNorm(benchmark::State& state, Isa isa) {
  set_active_isa(isa);
  const int64_t rows = state.range(0), dim = state.range(1);
  std::vector<float> x(static_cast<size_t>(rows * dim), 0.7f), y(x.size());
  std::vector<uint16_t> weight(static_cast<size_t>(dim), f32_to_bf16(1.1f));
  const TensorView w{DType::kBF16, {dim}, weight.data()};
  for (auto _ : state) {
    rms_norm(x.data(), rows, dim, w, 1e-6f, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * rows * dim * 8);
  state.SetLabel(isa_name(active_isa()));
  set_active_isa(best_supported_isa());
}

void register_benchmarks() {
  benchmark::RegisterBenchmark("roofline/memory_read_bandwidth", BM_MemoryReadBandwidth)->Iterations(1);
  benchmark::RegisterBenchmark("roofline/fma_peak", BM_FmaPeak)->Iterations(1);
  std::vector<LinearCase> cases;
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kScalar}) {
    if (isa > best_supported_isa()) continue;
    // Batch-1 decode: bandwidth bound.
    for (auto [n, k] : {std::pair<int64_t, int64_t>{8192, 2048}, {2048, 8192}}) {
      cases.push_back({1, n, k, DType::kBF16, isa});
      if (isa != Isa::kScalar) {
        cases.push_back({1, n, k, DType::kF32, isa});
        cases.push_back({1, n, k, DType::kF16, isa});
      }
    }
    if (isa == Isa::kScalar) continue;
    // Small batched decode: the dot form up to the packed-form threshold.
    for (int64_t m : {2, 4, 8}) cases.push_back({m, 2048, 8192, DType::kBF16, isa});
    // Batched decode / prefill: arithmetic bound.
    for (int64_t m : {16, 64, 512}) {
      cases.push_back({m, 2048, 2048, DType::kBF16, isa});
      cases.push_back({m, 2048, 2048, DType::kF32, isa});
      if (isa == Isa::kAvx512 && cpu_has_avx512_bf16())
        cases.push_back({m, 2048, 2048, DType::kBF16, isa, LinearPrecision::kBf16Dot});
    }
  }
  // The other Llama-3.2-1B projections (k/v, gate/up, down, lm_head) in both precisions at
  // batched-decode and prefill sizes; lm_head only at decode sizes (prefill computes logits
  // for the last position only). m = 8 and 12 on one shape for the kBf16DotMinRows choice.
  if (best_supported_isa() == Isa::kAvx512) {
    const std::pair<int64_t, int64_t> shapes[] = {{512, 2048}, {8192, 2048}, {2048, 8192}, {128256, 2048}};
    for (int64_t m : {8, 12, 16, 32, 40, 64, 72, 136, 512}) {
      for (auto [n, k] : shapes) {
        if ((n == 128256 && m > 64) || (m < 16 && n != 2048)) continue;
        // Served mixed steps (8 decodes and a prefill chunk): the packed form only.
        const bool mixed_step = m == 40 || m == 72 || m == 136;
        if (mixed_step) {
          if (amx_enabled())
            cases.push_back({m, n, k, DType::kBF16, Isa::kAvx512, LinearPrecision::kBf16Dot, /*packed=*/true});
          continue;
        }
        cases.push_back({m, n, k, DType::kBF16, Isa::kAvx512});
        if (cpu_has_avx512_bf16())
          cases.push_back({m, n, k, DType::kBF16, Isa::kAvx512, LinearPrecision::kBf16Dot});
        if (amx_enabled())
          cases.push_back({m, n, k, DType::kBF16, Isa::kAvx512, LinearPrecision::kBf16Dot, /*packed=*/true});
      }
    }
  }
  // Decode with packed weights (the model's AMX path): bound by reading W from DRAM.
  if (amx_enabled())
    for (int64_t m : {1, 8})
      for (auto [n, k] : {std::pair<int64_t, int64_t>{8192, 2048}, {2048, 8192}})
        cases.push_back({m, n, k, DType::kBF16, Isa::kAvx512, LinearPrecision::kBf16Dot, /*packed=*/true});
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kScalar}) {
    if (isa > best_supported_isa()) continue;
    const std::string suffix = std::string("/") + isa_name(isa);
    benchmark::RegisterBenchmark(("elementwise/silu_mul" + suffix).c_str(), BM_SiluMul, isa)
        ->Arg(11008)
        ->Arg(512 * 11008)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("elementwise/rms_norm_bf16_weight" + suffix).c_str(), BM_RmsNorm, isa)
        ->Args({1, 4096})
        ->Args({512, 4096})
        ->UseRealTime();
  }
  for (const LinearCase& c : cases)
    benchmark::RegisterBenchmark(("linear/" + case_name(c)).c_str(), BM_Linear, c)->UseRealTime();
}

// Share of the elapsed wall time since `start` that this process's threads were on a CPU.
double cpu_share(double wall_start, double cpu_start) {
  return (process_cpu_seconds() - cpu_start) / ((now_seconds() - wall_start) * bench_threads());
}

void print_summary(double wall_start, double cpu_start) {
  const double share = cpu_share(wall_start, cpu_start);
  const double bandwidth = read_bandwidth(/*remeasure=*/true);
  const auto [peak, peak_cpu] = fma_peak(/*remeasure=*/true);
  const double load = bench::load_average();
  std::printf("\nRoofline summary: best call of each case vs best roofline measurement.\n");
  std::printf("  %d threads, best ISA %s; load average %.2f; our threads ran %.0f%% of the wall time\n",
              bench_threads(), isa_name(best_supported_isa()), load, 100 * share);
  std::printf("  memory read bandwidth (sum over 1 GiB, all threads, best 32 MiB window): %.1f GB/s\n",
              bandwidth);
  const bool cpu_column = bench_threads() == 1;  // see BestRate
  std::printf("  f32 FMA peak (register-only FMA loop, all threads, best of 128 x ~1 ms): %.1f GFLOP/s",
              peak);
  if (cpu_column) std::printf(" (per CPU-second: %.1f)", peak_cpu);
  std::printf("\n  %-40s %18s   %s\n", "case", "by wall time",
              cpu_column ? "by CPU time" : "(OMP_NUM_THREADS=1 adds rates per CPU-second)");
  for (const auto& [name, r] : results()) {
    if (std::strcmp(r.unit, "GB/s") == 0) {
      std::printf("  %-40s %6.1f GB/s %5.1f%%   -   of read bandwidth\n", name.c_str(), r.wall,
                  100 * r.wall / bandwidth);
    } else if (cpu_column) {
      std::printf("  %-40s %6.1f GF/s %5.1f%%   %6.1f GF/s %5.1f%%   of f32 FMA peak\n", name.c_str(), r.wall,
                  100 * r.wall / peak, r.cpu, 100 * r.cpu / peak_cpu);
    } else {
      std::printf("  %-40s %6.1f GF/s %5.1f%%   -   of f32 FMA peak\n", name.c_str(), r.wall,
                  100 * r.wall / peak);
    }
  }
}

}  // namespace
}  // namespace hotswap::kernels

int main(int argc, char** argv) {
  const double wall_start = hotswap::kernels::now_seconds();
  const double cpu_start = hotswap::kernels::process_cpu_seconds();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  hotswap::kernels::register_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  hotswap::kernels::print_summary(wall_start, cpu_start);
  return 0;
}
