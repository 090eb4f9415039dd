#include "attention/mixed/mixed_backend.h"

#include <cstdio>

#include <nlohmann/json.hpp>

#include "attention/paged/paged_backend.h"
#include "attention/sequence_attention.h"

namespace hotswap {
namespace {

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
    // KV pages are shared by all layers and heads, so they can only be released when no head
    // of any layer reads beyond the streaming window.
    std::optional<StreamingRule> release;
    if (pattern->gates->all_gates_are(0.0f)) release = pattern->rule;
    const std::string ns =
        "mixed:" + window_key(pattern->window) + ",threshold=" + threshold + ",adapter=" + adapter->version();
    return sequence_attention(std::move(pattern), std::move(adapter), ns, release);
  }
};

}  // namespace

const AttentionBackend& mixed_backend() {
  static const MixedBackend backend;
  return backend;
}

}  // namespace hotswap
