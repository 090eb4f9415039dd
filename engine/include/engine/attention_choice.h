// The attention implementation a request asks for (specs/attention.md, specs/api.md).
#pragma once

#include <optional>
#include <string>

namespace hotswap {

enum class AttentionImpl { kAuto, kEager, kStreaming, kMixed, kNsa };

// Parameters given explicitly by the request override the adapter's (mixed) or defaults.
struct AttentionChoice {
  AttentionImpl impl = AttentionImpl::kAuto;
  std::optional<int> sink_window_size;
  std::optional<int> recent_window_size;
  std::optional<int> block_size;
  std::optional<float> gate_threshold;  // mixed only: DuoAttention-style deployment
};

const char* attention_impl_name(AttentionImpl impl);
// Parses "auto" | "eager" | "streaming" | "mixed" | "nsa" or a JSON object
// {"impl":..., "sink_window_size":N, ...}. On failure returns false and sets *error to a
// message that names the field and the valid values.
bool parse_attention_choice(const std::string& text, AttentionChoice* out, std::string* error);

}  // namespace hotswap
