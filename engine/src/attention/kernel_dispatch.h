// Internal to attention/: the dispatcher skeleton the CPU attention kernels share
// (paged_attention.cc, masked/sparse_attention.cc). A dispatcher cuts its calls into work
// items -- an item's keys, or one split of them (flash-decoding) when there are too few
// items to occupy the threads -- and run_work_items() runs them with the item kernel of the
// active ISA in one OpenMP region, merges the splits' online-softmax states exactly
// (online_softmax.h) and hands each item's final state to the dispatcher's finish step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "attention/online_softmax.h"
#include "kernels/isa.h"

namespace hotswap::attention_detail {

// Threads the kernels' parallel region uses: OpenMP's maximum, or 1 when called inside a
// parallel region (the kernel then runs serially on the calling thread).
int kernel_threads();

// The most splits per item for `num_items` items over `threads` threads: 1 when there are
// at least two items per thread (prefill), else enough for about two work items per thread
// (decode of a few sequences).
int max_splits_per_item(int64_t num_items, int threads);

// The one of a kernel's three per-ISA builds (or names) that kernels::active_isa() selects.
template <class T>
T for_active_isa(T avx512, T avx2, T scalar) {
  switch (kernels::active_isa()) {
    case kernels::Isa::kAvx512: return avx512;
    case kernels::Isa::kAvx2: return avx2;
    case kernels::Isa::kScalar: break;
  }
  return scalar;
}

// The split bookkeeping every work item carries. The splits of one item are consecutive
// work items; the first one leads.
struct SplitPart {
  int num_splits = 1;  // splits of this work item's item
  size_t state = 0;    // num_splits > 1: offset of this split's states in the split-state buffer
};

// What one work item needs: per-thread scratch floats and `num_states` online-softmax
// states of `head_dim` (state_stride(head_dim) floats each).
struct WorkShape {
  size_t scratch_floats = 0;
  int num_states = 0;
  int head_dim = 0;
};

// Runs every work item of `work` (Work derives from SplitPart) in one OpenMP region, dynamic
// schedule in the order of `work` (largest first balances best):
//   shape(w) -> WorkShape;
//   run(w, state, scratch): the item kernel; `state` is per-thread memory for an unsplit
//     item and the split's place in the split-state buffer otherwise;
//   finish(w, state): writes the outputs from the item's final state; for split items it is
//     called once, on the leader, with the merged state of all its splits.
// Assigns Work::state for splits.
template <class Work, class Shape, class Run, class Finish>
void run_work_items(std::vector<Work>& work, int threads, Shape shape, Run run, Finish finish) {
  size_t split_state_floats = 0;
  for (Work& w : work) {
    if (w.num_splits == 1) continue;
    const WorkShape s = shape(w);
    w.state = split_state_floats;
    split_state_floats += static_cast<size_t>(s.num_states) * state_stride(s.head_dim);
  }
  std::vector<float> split_states(split_state_floats);
  const int64_t num_work = static_cast<int64_t>(work.size());

  auto item = [&](int64_t idx) {
    const Work& w = work[static_cast<size_t>(idx)];
    const WorkShape s = shape(w);
    thread_local std::vector<float> scratch;
    const size_t need = s.scratch_floats + static_cast<size_t>(s.num_states) * state_stride(s.head_dim);
    if (scratch.size() < need) scratch.resize(need);
    float* state = w.num_splits == 1 ? scratch.data() + s.scratch_floats : split_states.data() + w.state;
    run(w, state, scratch.data());
    if (w.num_splits == 1) finish(w, static_cast<const float*>(state));
  };
  if (num_work > 1 && threads > 1) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t idx = 0; idx < num_work; ++idx) item(idx);
  } else {
    // Not even an empty region: one inside the model's layer region (model/layer_regions.h)
    // still enters the OpenMP runtime, once per layer of every decode step.
    for (int64_t idx = 0; idx < num_work; ++idx) item(idx);
  }

  if (split_state_floats == 0) return;
  // Merge the splits of each item into its leader's states.
  std::vector<size_t> leaders;
  for (size_t i = 0; i < work.size(); i += static_cast<size_t>(work[i].num_splits)) {
    if (work[i].num_splits > 1) leaders.push_back(i);
  }
  const int64_t num_leaders = static_cast<int64_t>(leaders.size());
#pragma omp parallel for schedule(static) if (num_leaders > 1 && threads > 1)
  for (int64_t li = 0; li < num_leaders; ++li) {
    const size_t first = leaders[static_cast<size_t>(li)];
    const Work& lead = work[first];
    const WorkShape s = shape(lead);
    const size_t stride = state_stride(s.head_dim);
    float* dst = split_states.data() + lead.state;
    for (int p = 1; p < lead.num_splits; ++p) {
      const float* src = split_states.data() + work[first + static_cast<size_t>(p)].state;
      for (int b = 0; b < s.num_states; ++b) merge_state(dst + b * stride, src + b * stride, s.head_dim);
    }
    finish(lead, static_cast<const float*>(dst));
  }
}

}  // namespace hotswap::attention_detail
