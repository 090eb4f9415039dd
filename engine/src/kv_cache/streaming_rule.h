// Which cached positions a query of block-granular sink + recent attention sees
// (specs/attention.md, `streaming`). The one place this rule is written down: the attention
// kernels mask with it, the reference kernel checks it per key, and the KV cache releases
// the pages it says no future query can see. Plain arithmetic; thread-safe.
//
// With attention block size B, sink S and recent window R: a query at position t sees the
// positions p <= t with p < sink_end = ceil(S/B)*B, or p >= local_start(t) =
// max(0, (t/B - ceil(R/B) + 1) * B). B = 1 gives StreamingLLM: the first S positions and the
// last R up to t. local_start is non-decreasing in t, so whatever a query at t cannot see in
// [sink_end, local_start(t)) no later query sees either.
#pragma once

#include <algorithm>
#include <cstdint>

namespace hotswap {

struct StreamingRule {
  int block_size = 1;     // B >= 1
  int sink_end = 0;       // ceil(S/B) * B
  int local_blocks = 1;   // ceil(R/B) >= 1

  static StreamingRule from_window(int sink_window_size, int recent_window_size, int block_size) {
    StreamingRule r;
    r.block_size = block_size;
    const int64_t sink_blocks = (static_cast<int64_t>(sink_window_size) + block_size - 1) / block_size;
    r.sink_end = static_cast<int>(sink_blocks * block_size);
    r.local_blocks = static_cast<int>((static_cast<int64_t>(recent_window_size) + block_size - 1) / block_size);
    return r;
  }

  // First position of the local window of a query at t.
  int local_start(int t) const {
    const int64_t start = (static_cast<int64_t>(t / block_size) - local_blocks + 1) * block_size;
    return static_cast<int>(std::max<int64_t>(0, start));
  }
  bool visible(int p, int t) const { return p <= t && (p < sink_end || p >= local_start(t)); }
  // The most positions the local window of any query spans (its own block included).
  int64_t max_local_span() const { return static_cast<int64_t>(local_blocks) * block_size; }
  // A query at t sees [0, min(sink_end, t+1)) and [max(local_start(t), sink_end), t]: at most
  // this many keys.
  int64_t num_visible(int t) const {
    const int64_t sink = std::min<int64_t>(sink_end, static_cast<int64_t>(t) + 1);
    const int64_t local_begin = std::max(local_start(t), sink_end);
    return sink + std::max<int64_t>(0, static_cast<int64_t>(t) + 1 - local_begin);
  }
};

}  // namespace hotswap
