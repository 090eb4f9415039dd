// How the projections share work between the OpenMP threads: one parallel region per call,
// each thread taking a contiguous part of the output columns (linear, linear_q8). Internal
// to kernels/.
#pragma once

#include <algorithm>
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace hotswap::kernels::detail {

// Below this many multiply-adds a parallel region costs more than it saves.
inline constexpr int64_t kMinParallelMacs = int64_t{1} << 16;

inline int thread_count(int64_t macs) {
#ifdef _OPENMP
  if (macs >= kMinParallelMacs) return omp_get_max_threads();
#endif
  return 1;
}

// Runs body(index, count) on `threads` threads (fewer if OpenMP grants fewer).
template <typename Body>
void parallel_run(int threads, const Body& body) {
#ifdef _OPENMP
  if (threads > 1) {
#pragma omp parallel num_threads(threads)
    body(omp_get_thread_num(), omp_get_num_threads());
    return;
  }
#endif
  body(0, 1);
}

inline void barrier() {
#ifdef _OPENMP
#pragma omp barrier
#endif
}

// The index-th of `count` nearly equal contiguous parts of [0, units), scaled by `unit` and
// clamped to `limit`.
struct Range {
  int64_t begin, end;
};
inline Range split(int64_t units, int count, int index, int64_t unit, int64_t limit) {
  const int64_t base = units / count, extra = units % count;
  const int64_t b = index * base + std::min<int64_t>(index, extra);
  const int64_t e = b + base + (index < extra ? 1 : 0);
  return {std::min(b * unit, limit), std::min(e * unit, limit)};
}

}  // namespace hotswap::kernels::detail
