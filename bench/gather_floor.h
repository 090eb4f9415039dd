// The floors under one thread's decode-attention reads at this machine's memory speed right
// now: streaming a layer's KV cache (dense attention) and gathering scattered K and V rows
// through a shuffled block table (sparse attention, as attention/masked/sparse_attention
// reads them: ascending keys, each key's two rows prefetched some keys ahead). The
// long-context benchmark sets each configuration's step against what its reads cost at
// these rates, so "where the time goes" separates the kernels' own cost from the memory's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/huge_buffer.h"

namespace hotswap::bench {

// Where the rows are when a step starts: just streamed through (one layer's cache, read
// again right away, may sit in L3), or evicted by a larger stream (a model's many layers).
enum class Residency { kWarm, kCold };

class RowGatherProbe {
 public:
  // A cache of `working_set_bytes` (two halves: K rows, V rows) of `row_bytes` rows in pages
  // of `page_rows` rows, the pages in shuffled physical order; filled, in huge pages.
  RowGatherProbe(size_t working_set_bytes, size_t row_bytes, int page_rows);

  // ns per key, one thread, best of `reps`: keys chosen in runs of `run` consecutive
  // positions (1: a key-level selection; a page: Quest's), each run taken with probability
  // `density`, read in ascending order, a key's K and V rows (every 64-byte line) read.
  // Each rep first streams the whole cache (kWarm), as the dense configuration before it
  // would, or a 1 GiB buffer of its own (kCold).
  double scattered_ns_per_key(int run, double density, Residency residency, int reps = 3);

  // Streams a 1 GiB buffer (allocated on first use): afterwards little of any earlier data
  // is left in the caches.
  void evict();

  // GB/s at which one thread streams the whole cache (every 64-byte line), best of `reps`.
  double stream_gbps(int reps = 3);

  size_t bytes() const { return bytes_; }

 private:
  HugeBuffer buffer_;
  HugeBuffer eviction_;
  size_t bytes_ = 0;
  size_t row_bytes_ = 0;
  int page_rows_ = 0;
  std::vector<int64_t> page_of_;  // logical page -> physical page
};

}  // namespace hotswap::bench
