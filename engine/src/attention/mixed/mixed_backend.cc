#include "attention/mixed/mixed_backend.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include <nlohmann/json.hpp>

#include "attention/paged/paged_backend.h"
#include "attention/sequence_attention.h"

namespace hotswap {
namespace {

// [layer * num_kv_heads + kv_head]: 1 when a query head of that group has a gate != 0 (it
// reads the dense branch, so the lane keeps every position), 0 when all are streaming.
std::vector<uint8_t> kept_lanes(const MixedAdapter& gates, const ModelShape& shape) {
  if (shape.num_kv_heads < 1 || shape.num_heads % shape.num_kv_heads != 0) return {};  // no lanes known
  const int group = shape.num_heads / shape.num_kv_heads;
  std::vector<uint8_t> kept(static_cast<size_t>(shape.num_layers) * shape.num_kv_heads, 0);
  for (int l = 0; l < shape.num_layers; ++l)
    for (int h = 0; h < shape.num_heads; ++h)
      if (gates.gate(l, h) != 0.0f) kept[static_cast<size_t>(l) * shape.num_kv_heads + h / group] = 1;
  return kept;
}

class MixedBackend final : public PagedBackend {
 public:
  const char* name() const override { return "mixed"; }
  bool chosen_by_auto_for(std::optional<AdapterType> type) const override { return type == AdapterType::kMixed; }

  Result<SequenceAttention> resolve(const nlohmann::json& params, std::shared_ptr<const Adapter> adapter,
                                    const ModelShape& shape) const override {
    WindowParams p;
    if (Status s = read_window_params(params, &p); !s) return s;
    if (!adapter) return Status::invalid_argument("attention 'mixed' needs a mixed adapter; the request has no adapter");
    if (adapter->type() != AdapterType::kMixed || !adapter->mixed()) {
      return Status::invalid_argument("attention 'mixed' needs a mixed adapter; " + adapter_label(*adapter));
    }
    const MixedAdapter& m = *adapter->mixed();
    if (m.num_layers != shape.num_layers || m.num_heads != shape.num_heads) {
      return Status::invalid_argument("attention 'mixed': adapter gates are for " + std::to_string(m.num_layers) +
                                      " layers x " + std::to_string(m.num_heads) + " heads, the model has " +
                                      std::to_string(shape.num_layers) + " x " + std::to_string(shape.num_heads));
    }
    auto pattern = std::make_shared<PagedPattern>();
    pattern->kind = PagedKind::kMixed;
    if (Status s = set_window(m.window, p, pattern.get()); !s) return s;
    pattern->gates = adapter->mixed();
    std::string threshold = "none";
    if (p.gate_threshold) {
      const float x = *p.gate_threshold;
      if (!(x >= 0.0f && x <= 1.0f)) {
        return Status::invalid_argument("attention 'mixed': gate_threshold must be in [0, 1], got " + std::to_string(x));
      }
      // DuoAttention deployment: each head is either dense (1) or streaming (0).
      auto t = std::make_shared<MixedAdapter>(m);
      for (float& g : t->gates) g = g >= x ? 1.0f : 0.0f;
      pattern->gates = std::move(t);
      pattern->gate_threshold = x;
      char buf[32];
      std::snprintf(buf, sizeof buf, "%a", static_cast<double>(x));  // exact, so equal keys mean equal gates
      threshold = buf;
    }
    // A KV head (of a layer) reads beyond the streaming window when any query head of its
    // group has a gate != 0; the others give back what is outside the window, per KV head, or
    // whole pages when no head of any layer is dense.
    std::vector<uint8_t> kept = kept_lanes(*pattern->gates, shape);
    const auto num_kept = static_cast<size_t>(std::count(kept.begin(), kept.end(), uint8_t{1}));
    std::optional<StreamingRule> release;
    if (kept.empty()) {  // no lanes known (shape without KV heads): whole pages only
      if (pattern->gates->all_gates_are(0.0f)) release = pattern->rule;
    } else if (num_kept < kept.size()) {
      release = pattern->rule;
      if (num_kept == 0) kept.clear();  // every lane streams: whole pages
    }
    const std::string ns =
        "mixed:" + window_key(pattern->window) + ",threshold=" + threshold + ",adapter=" + adapter->version();
    SequenceAttention s = sequence_attention(std::move(pattern), std::move(adapter), ns, release);
    if (release) s.kept_lanes = std::move(kept);
    return s;
  }
};

}  // namespace

const AttentionBackend& mixed_backend() {
  static const MixedBackend backend;
  return backend;
}

}  // namespace hotswap
