// Kernel throughput against this machine's roofline.
//  * memory read bandwidth (GB/s): every thread sums its slice of a 1 GiB buffer with the
//    widest vectors the CPU has, best of several passes; the ceiling for batch-1 decode GEMV.
//  * float32 FMA peak (GFLOP/s): every thread runs independent register-only FMA chains
//    (no loads), best of several; the ceiling for batched GEMM.
//  * linear(): GEMV reports weight GB/s and its fraction of the read bandwidth; GEMM reports
//    GFLOP/s and its fraction of the FMA peak. Weights rotate over copies totalling >= 4x
//    the L3 size, so GEMV streams from DRAM as in a real multi-layer model.
// A summary table with the ratios is printed after the run.
#include <benchmark/benchmark.h>
#include <immintrin.h>

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

#include "kernels/isa.h"
#include "kernels/linear.h"

// GCC 12's AVX-512 intrinsics self-initialise "undefined" operands; -Wuninitialized flags them.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace hotswap::kernels {
namespace {

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

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct AlignedDelete {
  void operator()(void* p) const { ::operator delete (p, std::align_val_t{64}); }
};
using AlignedBytes = std::unique_ptr<uint8_t, AlignedDelete>;
AlignedBytes aligned_bytes(size_t n) {
  return AlignedBytes(static_cast<uint8_t*>(::operator new (n, std::align_val_t{64})));
}

// ---------------------------------------------------------------------------------------
// Roofline: read bandwidth.

// kPrefetch: also issue a software prefetch 2 KiB ahead; the faster of the two variants counts.
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
  switch (best_supported_isa()) {
    case Isa::kAvx512:
      return sum_avx512<kPrefetch>(p, n);
    case Isa::kAvx2:
      return sum_avx2<kPrefetch>(p, n);
    case Isa::kScalar:
      break;
  }
  return sum_scalar(p, n);
}

// Results of the timed loops go here so the compiler keeps them; one slot per thread.
volatile float g_sink[256];

double measure_read_bandwidth_gbs() {
  constexpr size_t kBytes = size_t{1} << 30, kFloats = kBytes / 4;
  AlignedBytes buf = aligned_bytes(kBytes);
  auto* f = reinterpret_cast<float*>(buf.get());
  auto slice = [&](int t, int nt) {
    return std::pair<size_t, size_t>{kFloats * t / nt, kFloats * (t + 1) / nt};
  };
  // Each thread touches the slice it will read (first-touch placement).
  on_all_threads([&](int t, int nt) {
    auto [b, e] = slice(t, nt);
    std::fill(f + b, f + e, 1.0f);
  });
  double best = 0;
  for (int rep = 0; rep < 8; ++rep) {
    const double t0 = now_seconds();
    on_all_threads([&](int t, int nt) {
      auto [b, e] = slice(t, nt);
      const size_t n = (e - b) / 64 * 64;
      g_sink[t % 256] = rep % 2 ? sum_best<true>(f + b, n) : sum_best<false>(f + b, n);
    });
    best = std::max(best, kBytes / (now_seconds() - t0));
  }
  return best / 1e9;
}

// Best seen so far (measured again before the summary).
double read_bandwidth_gbs(bool remeasure = false) {
  static double best = 0;
  if (best == 0 || remeasure) best = std::max(best, measure_read_bandwidth_gbs());
  return best;
}

// ---------------------------------------------------------------------------------------
// Roofline: FMA peak. 16 (AVX2: 12) independent accumulators cover FMA latency x pipes on
// current cores; the loop has no loads, so it measures the FMA units only.

constexpr int64_t kFmaIters = int64_t{1} << 22;

// Inline assembly, so the compiler can neither spill the accumulators nor fuse the chains.
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

double measure_fma_peak_gflops() {
  const bool wide = best_supported_isa() == Isa::kAvx512;
  const double flops_per_iter = wide ? 16.0 * 16 * 2 : 12.0 * 8 * 2;
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    int threads = 1;
    const double t0 = now_seconds();
    on_all_threads([&](int t, int nt) {
      if (t == 0) threads = nt;
      if (wide)
        fma_loop_avx512(kFmaIters);
      else
        fma_loop_avx2(kFmaIters);
    });
    best = std::max(best, threads * flops_per_iter * kFmaIters / (now_seconds() - t0));
  }
  return best / 1e9;
}

double fma_peak_gflops(bool remeasure = false) {
  static double best = 0;
  if (best == 0 || remeasure) best = std::max(best, measure_fma_peak_gflops());
  return best;
}

// ---------------------------------------------------------------------------------------
// Results kept for the summary printed after the run.

struct Result {
  double value;
  const char* unit;
  double ratio;
  const char* of;
};
std::map<std::string, Result>& results() {
  static std::map<std::string, Result> r;
  return r;
}

void BM_MemoryReadBandwidth(benchmark::State& state) {
  double gbs = 0;
  for (auto _ : state) gbs = read_bandwidth_gbs();
  state.counters["GB/s"] = gbs;
  state.counters["threads"] = bench_threads();
  results()["memory read bandwidth (1 GiB sum, all threads, best of 8)"] = {gbs, "GB/s", 1.0, "itself"};
}

void BM_FmaPeak(benchmark::State& state) {
  double gflops = 0;
  for (auto _ : state) gflops = fma_peak_gflops();
  state.counters["GFLOP/s"] = gflops;
  state.counters["threads"] = bench_threads();
  results()["f32 FMA peak (register-only loop, all threads, best of 5)"] = {gflops, "GFLOP/s", 1.0, "itself"};
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
};

std::string case_name(const LinearCase& c) {
  const std::string dt(dtype_name(c.dtype));
  std::string name = c.m == 1 ? "gemv" : "gemm_m" + std::to_string(c.m);
  name += "/" + dt + "/n" + std::to_string(c.n) + "_k" + std::to_string(c.k) + "/" + isa_name(c.isa);
  if (c.precision == LinearPrecision::kBf16Dot) name += "_bf16dot";
  return name;
}

void BM_Linear(benchmark::State& state, LinearCase c) {
  if (set_active_isa(c.isa) != c.isa) {
    state.SkipWithError("ISA not supported on this CPU");
    return;
  }
  set_linear_precision(c.precision);
  const WeightCopies& w = weights(c.dtype, c.n, c.k);
  std::vector<float> x(static_cast<size_t>(c.m * c.k)), y(static_cast<size_t>(c.m * c.n));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 97) / 97.0f - 0.5f;
  size_t copy = 0;
  int64_t calls = 0;
  double total = 0, best = 1e30;
  for (auto _ : state) {
    const double t0 = now_seconds();
    linear(x.data(), c.m, w.views[copy], nullptr, y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    const double dt = now_seconds() - t0;
    total += dt;
    best = std::min(best, dt);
    copy = (copy + 1) % w.views.size();
    ++calls;
  }
  // Mean and best call: the machine is shared, so the summary compares best with best.
  const double bytes = static_cast<double>(c.n * c.k) * dtype_size(c.dtype);
  const double flops = 2.0 * static_cast<double>(c.m * c.n * c.k);
  const double mean = total / static_cast<double>(std::max<int64_t>(calls, 1));
  state.counters["GB/s"] = bytes / mean / 1e9;
  state.counters["GB/s_best"] = bytes / best / 1e9;
  state.counters["GFLOP/s"] = flops / mean / 1e9;
  state.counters["GFLOP/s_best"] = flops / best / 1e9;
  state.SetLabel(linear_isa());
  if (c.m == 1)
    results()[case_name(c)] = {bytes / best / 1e9, "GB/s", 0, "read bandwidth"};
  else
    results()[case_name(c)] = {flops / best / 1e9, "GFLOP/s", 0, "FMA peak"};
  set_active_isa(best_supported_isa());
  set_linear_precision(LinearPrecision::kF32);
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
  for (const LinearCase& c : cases)
    benchmark::RegisterBenchmark(("linear/" + case_name(c)).c_str(), BM_Linear, c)
        ->UseRealTime()
        ->MinTime(0.3);
}

void print_summary() {
  const double bandwidth = read_bandwidth_gbs(/*remeasure=*/true), peak = fma_peak_gflops(/*remeasure=*/true);
  results()["memory read bandwidth (1 GiB sum, all threads, best of 8)"] = {bandwidth, "GB/s", 1.0, "itself"};
  results()["f32 FMA peak (register-only loop, all threads, best of 5)"] = {peak, "GFLOP/s", 1.0, "itself"};
  for (auto& [name, r] : results())
    if (r.ratio == 0) r.ratio = r.value / (std::strcmp(r.unit, "GB/s") == 0 ? bandwidth : peak);
  std::printf("\nRoofline summary: best call vs best roofline measurement (%d threads; best ISA %s):\n",
              bench_threads(), isa_name(best_supported_isa()));
  for (const auto& [name, r] : results())
    std::printf("  %-58s %9.1f %-8s %6.1f%% of %s\n", name.c_str(), r.value, r.unit, 100 * r.ratio, r.of);
}

}  // namespace
}  // namespace hotswap::kernels

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  hotswap::kernels::register_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  hotswap::kernels::print_summary();
  return 0;
}
