// How the projections share work between the OpenMP threads: one parallel region per call
// (or the caller's region: linear_team.h), each thread taking a contiguous part of the output
// columns (linear, linear_q8). Internal to kernels/.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/team.h"

namespace hotswap::kernels::detail {

// Below this many multiply-adds a parallel region costs more than it saves.
inline constexpr int64_t kMinParallelMacs = int64_t{1} << 16;

inline int thread_count(int64_t macs) {
  return macs >= kMinParallelMacs ? team_threads() : 1;
}

// Runs body(index, count) on `threads` threads (fewer if OpenMP grants fewer).
template <typename Body>
void parallel_run(int threads, const Body& body) {
  team_run(threads, body);
}

inline void barrier() { team_barrier(); }

// body(i) for every i in [0, count): split over the threads if `parallel`, else a plain loop
// (a region with a false if() clause still enters the OpenMP runtime, and a decode step has
// hundreds of small element-wise calls).
template <typename Body>
void for_each_index(int64_t count, bool parallel, const Body& body) {
  if (!parallel) {
    for (int64_t i = 0; i < count; ++i) body(i);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (int64_t i = 0; i < count; ++i) body(i);
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
