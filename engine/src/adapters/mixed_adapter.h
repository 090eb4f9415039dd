// The parameters of a `mixed` adapter (specs/adapters.md): one gate in [0, 1] per layer and
// query head, plus the streaming windows the gates were trained with. Immutable once built;
// shared (shared_ptr<const>) by every sequence that uses it, from any thread.
#pragma once

#include <string>
#include <vector>

namespace hotswap {

// Sink + recent window of `streaming` attention (specs/attention.md), in tokens. The
// defaults are AReaL's training values, which the spec makes the server defaults.
struct StreamingWindow {
  int sink_window_size = 128;    // S >= 0
  int recent_window_size = 1024; // R >= 1
  int block_size = 128;          // B >= 1; 1 = token-granular StreamingLLM

  bool operator==(const StreamingWindow&) const = default;
};

struct MixedAdapter {
  StreamingWindow window;
  int num_layers = 0;
  int num_heads = 0;     // query heads H
  int num_kv_heads = 0;  // KV heads Hkv
  // [num_layers][num_heads]: gate of each query head. A document that gives Hkv gates per
  // layer has them repeated to the H/Hkv query heads of each group (AReaL); one that gives
  // H gates keeps them as they are, so heads of one group may differ.
  std::vector<float> gates;
  // Layers whose gates came as H per-query-head values (informational).
  int num_per_query_head_layers = 0;
  std::string model_name;  // the document's model_name, if any (informational)

  float gate(int layer, int head) const { return gates[static_cast<size_t>(layer) * num_heads + head]; }
  const float* layer_gates(int layer) const { return gates.data() + static_cast<size_t>(layer) * num_heads; }
  bool all_gates_are(float value) const {
    for (float g : gates) {
      if (g != value) return false;
    }
    return true;
  }
};

}  // namespace hotswap
