// This machine's roofline, measured the same way by every benchmark: memory read bandwidth
// (the ceiling of batch-1 decode) and the f32 FMA peak (the ceiling of batched GEMM), plus
// the clocks and CPU-share accounting the benchmarks report beside them.
//
// The machines we run on are shared VMs whose memory bandwidth drifts by tens of percent
// from one second to the next, so a ratio "decode GB/s ÷ bandwidth" is only meaningful when
// both are measured under the same conditions: ReadBandwidthProbe::pass() is cheap enough
// (one sweep over its buffer) to interleave with the work it is compared with.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace hotswap::bench {

double now_seconds();
// CPU time of the whole process (every thread), seconds.
double process_cpu_seconds();
// 1-minute load average, or -1 if unavailable.
double load_average();

inline int bench_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// body(thread index, thread count) on every OpenMP thread.
template <typename Body>
void on_all_threads(const Body& body) {
#ifdef _OPENMP
#pragma omp parallel
  body(omp_get_thread_num(), omp_get_num_threads());
#else
  body(0, 1);
#endif
}

// Wall and CPU time of one timed region. The CPU-time figure is process CPU seconds divided
// by the thread count: what the region would take with the cores to itself. It is a second
// opinion for a shared machine: threads spinning at a barrier count as busy, and a thread
// running alone may get more than its share of memory bandwidth.
struct Elapsed {
  double wall = 0, cpu = 0;
};

class Stopwatch {
 public:
  Stopwatch() : wall_(now_seconds()), cpu_(process_cpu_seconds()) {}
  Elapsed elapsed() const { return {now_seconds() - wall_, (process_cpu_seconds() - cpu_) / bench_threads()}; }

 private:
  double wall_, cpu_;
};

// Share of a region's wall time that this process's threads were on a CPU.
class CpuShare {
 public:
  CpuShare() : wall_(now_seconds()), cpu_(process_cpu_seconds()) {}
  double share() const { return (process_cpu_seconds() - cpu_) / ((now_seconds() - wall_) * bench_threads()); }

 private:
  double wall_, cpu_;
};

// Best rates seen: by wall time and by CPU time.
struct Rate {
  double wall = 0, cpu = 0;
  void keep(double amount, Elapsed e) {
    if (e.wall > 0 && amount / e.wall > wall) wall = amount / e.wall;
    if (e.cpu > 0 && amount / e.cpu > cpu) cpu = amount / e.cpu;
  }
  void keep(const Rate& r) {
    if (r.wall > wall) wall = r.wall;
    if (r.cpu > cpu) cpu = r.cpu;
  }
};

// Every thread sums its slice of a buffer (first-touched by that thread) with the widest
// vectors the CPU has: the rate at which this machine can stream bytes from DRAM right now.
class ReadBandwidthProbe {
 public:
  explicit ReadBandwidthProbe(size_t bytes = size_t{1} << 30);
  ~ReadBandwidthProbe();
  ReadBandwidthProbe(const ReadBandwidthProbe&) = delete;
  ReadBandwidthProbe& operator=(const ReadBandwidthProbe&) = delete;

  // One sweep over the buffer; GB/s by wall and CPU time.
  Rate pass();
  // Best of `passes` sweeps.
  Rate best_of(int passes);
  // Best rate of any `window_bytes` window, each timed alone, over `passes` sweeps: samples
  // of the size of one kernel call, so that on a shared machine the best window and the
  // best call have similar odds of running undisturbed.
  Rate best_window(size_t window_bytes, int passes);
  size_t bytes() const { return bytes_; }

 private:
  float* data_ = nullptr;
  size_t bytes_ = 0;
  int passes_ = 0;  // alternates software prefetch on and off
};

// f32 FMA peak, GFLOP/s: every thread runs 16 (AVX2: 12) independent register-only
// vfmadd231ps chains in inline assembly (no loads), best of `reps` runs of `iters` loop
// iterations (2^22: ~10 ms).
Rate measure_fma_peak(int reps = 5, int64_t iters = int64_t{1} << 22);
// How the peak is measured, for the report ("zmm, 16 independent chains per thread").
const char* fma_peak_method();

// Median of a sample (copied); 0 when empty.
double median(const double* values, size_t n);

}  // namespace hotswap::bench
