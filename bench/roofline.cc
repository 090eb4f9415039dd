#include "roofline.h"

#include <immintrin.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <new>
#include <vector>

#include "kernels/isa.h"

// GCC 12's AVX-512 intrinsics self-initialise "undefined" operands; -Wuninitialized flags them.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace hotswap::bench {
namespace {

using kernels::Isa;

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

}  // namespace

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double process_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double load_average() {
  double load = -1;
  if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &load) != 1) load = -1;
    std::fclose(f);
  }
  return load;
}

ReadBandwidthProbe::ReadBandwidthProbe(size_t bytes) : bytes_(bytes / 4096 * 4096) {
  data_ = static_cast<float*>(::operator new(bytes_, std::align_val_t{64}));
  const size_t floats = bytes_ / 4;
  // Each thread first-touches the slice it will read.
  on_all_threads([&](int t, int nt) { std::fill(data_ + floats * t / nt, data_ + floats * (t + 1) / nt, 1.0f); });
}

ReadBandwidthProbe::~ReadBandwidthProbe() { ::operator delete(data_, std::align_val_t{64}); }

Rate ReadBandwidthProbe::pass() {
  const size_t floats = bytes_ / 4;
  const bool prefetch = passes_++ % 2 == 1;
  const Stopwatch sw;
  on_all_threads([&](int t, int nt) {
    const size_t b = floats * t / nt, e = floats * (t + 1) / nt, n = (e - b) / 64 * 64;
    g_sink[t % 256] = prefetch ? sum_best<true>(data_ + b, n) : sum_best<false>(data_ + b, n);
  });
  Rate r;
  r.keep(static_cast<double>(bytes_) / 1e9, sw.elapsed());
  return r;
}

Rate ReadBandwidthProbe::best_window(size_t window_bytes, int passes) {
  const size_t window_floats = window_bytes / 4, windows = bytes_ / 4 / window_floats;
  Rate best;
  for (int pass = 0; pass < passes; ++pass) {
    const bool prefetch = passes_++ % 2 == 1;
    for (size_t w = 0; w < windows; ++w) {
      const Stopwatch sw;
      on_all_threads([&](int t, int nt) {
        // Thread t reads its part of the window (its part of the buffer, as first touched:
        // windows cut each thread's slice at the same relative offsets).
        const size_t slice = bytes_ / 4 / static_cast<size_t>(nt), per = window_floats / static_cast<size_t>(nt);
        const size_t b = slice * static_cast<size_t>(t) + per * w, n = per / 64 * 64;
        g_sink[t % 256] = prefetch ? sum_best<true>(data_ + b, n) : sum_best<false>(data_ + b, n);
      });
      best.keep(static_cast<double>(window_bytes) / 1e9, sw.elapsed());
    }
  }
  return best;
}

Rate ReadBandwidthProbe::best_of(int passes) {
  Rate best;
  for (int i = 0; i < passes; ++i) best.keep(pass());
  return best;
}

Rate measure_fma_peak(int reps, int64_t iters) {
  const Isa isa = kernels::best_supported_isa();
  if (isa == Isa::kScalar) return {};
  const bool wide = isa == Isa::kAvx512;
  const double flops_per_iter = wide ? 16.0 * 16 * 2 : 12.0 * 8 * 2;
  Rate best;
  for (int rep = 0; rep < reps; ++rep) {
    const Stopwatch sw;
    on_all_threads([&](int, int) {
      if (wide)
        fma_loop_avx512(iters);
      else
        fma_loop_avx2(iters);
    });
    best.keep(bench_threads() * flops_per_iter * static_cast<double>(iters) / 1e9, sw.elapsed());
  }
  return best;
}

const char* fma_peak_method() {
  return kernels::best_supported_isa() == Isa::kAvx512 ? "zmm, 16 independent chains per thread"
                                                       : "ymm, 12 independent chains per thread";
}

double median(const double* values, size_t n) {
  if (n == 0) return 0;
  std::vector<double> s(values, values + n);
  std::sort(s.begin(), s.end());
  return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

}  // namespace hotswap::bench
