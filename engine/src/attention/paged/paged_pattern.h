// The configuration of the patterns the paged online-softmax kernel computes: `eager`,
// `streaming` and `mixed` (specs/attention.md). Their backends (attention/eager,
// attention/streaming, attention/mixed) resolve requests into a PagedPattern; the kernel
// (attention/paged_attention.h) and its reference read it.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "adapters/mixed_adapter.h"
#include "attention/attention_backend.h"
#include "kv_cache/streaming_rule.h"

namespace hotswap {

enum class PagedKind { kEager, kStreaming, kMixed };

struct PagedPattern : BackendConfig {
  PagedKind kind = PagedKind::kEager;
  StreamingWindow window;  // streaming and mixed
  StreamingRule rule;      // `window` as positions (streaming and mixed)
  // mixed: the gates the kernel applies, [num_layers][num_heads] per query head. With
  // gate_threshold they are already thresholded to 0/1 (DuoAttention deployment).
  std::shared_ptr<const MixedAdapter> gates;
  std::optional<float> gate_threshold;
};

// The pattern of a call: its sequence's, or eager when the call has no sequence attention.
const PagedPattern& paged_pattern(const LayerAttentionCall& call);

// The request fields the paged family (and nsa, which rejects them) understands. A field is
// absent unless the request gave it.
struct WindowParams {
  std::optional<int> sink_window_size;
  std::optional<int> recent_window_size;
  std::optional<int> block_size;
  std::optional<float> gate_threshold;  // mixed only: DuoAttention-style deployment

  bool has_window() const { return sink_window_size || recent_window_size || block_size; }
};

// Reads `params` (the request's attention object, or null) into *out; the message names the
// offending field, e.g. "attention: field 'block_size' must be an integer in [1, 1073741824], got 0".
Status read_window_params(const nlohmann::json& params, WindowParams* out);

// Range check of a resolved window, naming the implementation.
Status check_window(const StreamingWindow& w, const char* impl);
void apply_window_overrides(const WindowParams& p, StreamingWindow* w);
// "sink=S,recent=R,block=B": part of the prefix-cache namespace.
std::string window_key(const StreamingWindow& w);

}  // namespace hotswap
