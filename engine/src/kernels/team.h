// Running kernels inside one OpenMP parallel region that the caller opens, instead of one
// region per kernel call (issue 16): every fork/join wakes and parks the workers (a futex
// wake and sleep each under OMP_WAIT_POLICY=passive), a fixed cost per call that dominates a
// small model's decode step. team_run opens the region; the kernels' team forms
// (linear_team.h) take the thread's index and count; team_barrier orders the steps.
#pragma once

#ifdef _OPENMP
#include <omp.h>
#endif

namespace hotswap::kernels {

// The threads a region gets by default (omp_get_max_threads(); 1 without OpenMP).
inline int team_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// Runs body(index, count) on `threads` threads (fewer if OpenMP grants fewer).
template <typename Body>
void team_run(int threads, const Body& body) {
#ifdef _OPENMP
  if (threads > 1) {
#pragma omp parallel num_threads(threads)
    body(omp_get_thread_num(), omp_get_num_threads());
    return;
  }
#endif
  body(0, 1);
}

// Every thread of the region waits here for the others (their writes are then visible).
inline void team_barrier() {
#ifdef _OPENMP
#pragma omp barrier
#endif
}

}  // namespace hotswap::kernels
