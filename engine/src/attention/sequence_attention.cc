#include "attention/sequence_attention.h"

#include "attention/nsa/nsa_attention.h"

#include <cstdio>

#include "attention/paged_attention.h"

namespace hotswap {
namespace {

constexpr int kMaxWindow = 1 << 30;

Status check_window(const StreamingWindow& w, const char* impl) {
  auto bad = [&](const char* field, int value, int min_value) {
    return Status::invalid_argument(std::string("attention '") + impl + "': " + field + " must be in [" +
                                    std::to_string(min_value) + ", " + std::to_string(kMaxWindow) + "], got " +
                                    std::to_string(value));
  };
  if (w.sink_window_size < 0 || w.sink_window_size > kMaxWindow) return bad("sink_window_size", w.sink_window_size, 0);
  if (w.recent_window_size < 1 || w.recent_window_size > kMaxWindow) {
    return bad("recent_window_size", w.recent_window_size, 1);
  }
  if (w.block_size < 1 || w.block_size > kMaxWindow) return bad("block_size", w.block_size, 1);
  return Status::ok();
}

void apply_overrides(const AttentionChoice& c, StreamingWindow* w) {
  if (c.sink_window_size) w->sink_window_size = *c.sink_window_size;
  if (c.recent_window_size) w->recent_window_size = *c.recent_window_size;
  if (c.block_size) w->block_size = *c.block_size;
}

std::string window_key(const StreamingWindow& w) {
  return "sink=" + std::to_string(w.sink_window_size) + ",recent=" + std::to_string(w.recent_window_size) +
         ",block=" + std::to_string(w.block_size);
}

std::string adapter_label(const Adapter& a) {
  return (a.name().empty() ? std::string("the request's adapter") : "adapter '" + a.name() + "'") + " is " +
         (a.type() == AdapterType::kMixed ? "a mixed" : "an nsa") + " adapter";
}

}  // namespace

Result<SequenceAttention> resolve_attention(const AttentionChoice& choice, std::shared_ptr<const Adapter> adapter,
                                            const ModelShape& shape) {
  SequenceAttention s;
  s.adapter = adapter;
  s.impl = choice.impl;
  if (s.impl == AttentionImpl::kAuto) {
    s.impl = !adapter                                  ? AttentionImpl::kEager
             : adapter->type() == AdapterType::kMixed ? AttentionImpl::kMixed
                                                      : AttentionImpl::kNsa;
  }
  const char* name = attention_impl_name(s.impl);
  const bool has_window = choice.sink_window_size || choice.recent_window_size || choice.block_size;
  if (choice.gate_threshold && s.impl != AttentionImpl::kMixed) {
    return Status::invalid_argument(std::string("attention '") + name +
                                    "': gate_threshold applies only to attention 'mixed'");
  }

  switch (s.impl) {
    case AttentionImpl::kAuto:
    case AttentionImpl::kEager:
      if (has_window) {
        return Status::invalid_argument(
            "attention 'eager': sink_window_size, recent_window_size and block_size apply only to 'streaming' and "
            "'mixed'");
      }
      s.impl = AttentionImpl::kEager;
      s.cache_namespace = "eager";
      return s;  // an adapter, if any, is pinned but does not change eager KV: shared namespace

    case AttentionImpl::kStreaming:
      // Streaming takes no parameters from an adapter: the spec ties the adapter's windows
      // to `mixed` only, so an explicit `streaming` means the defaults or the request's.
      apply_overrides(choice, &s.window);
      if (Status st = check_window(s.window, name); !st) return st;
      s.rule = StreamingRule::from_window(s.window.sink_window_size, s.window.recent_window_size, s.window.block_size);
      s.release_rule = s.rule;
      s.cache_namespace = "streaming:" + window_key(s.window);
      return s;

    case AttentionImpl::kMixed: {
      if (!adapter) {
        return Status::invalid_argument("attention 'mixed' needs a mixed adapter; the request has no adapter");
      }
      if (adapter->type() != AdapterType::kMixed || !adapter->mixed()) {
        return Status::invalid_argument("attention 'mixed' needs a mixed adapter; " + adapter_label(*adapter));
      }
      const MixedAdapter& m = *adapter->mixed();
      if (m.num_layers != shape.num_layers || m.num_heads != shape.num_heads) {
        return Status::invalid_argument("attention 'mixed': adapter gates are for " + std::to_string(m.num_layers) +
                                        " layers x " + std::to_string(m.num_heads) + " heads, the model has " +
                                        std::to_string(shape.num_layers) + " x " + std::to_string(shape.num_heads));
      }
      s.window = m.window;
      apply_overrides(choice, &s.window);
      if (Status st = check_window(s.window, name); !st) return st;
      s.rule = StreamingRule::from_window(s.window.sink_window_size, s.window.recent_window_size, s.window.block_size);
      s.gates = adapter->mixed();
      std::string threshold = "none";
      if (choice.gate_threshold) {
        const float x = *choice.gate_threshold;
        if (!(x >= 0.0f && x <= 1.0f)) {
          return Status::invalid_argument("attention 'mixed': gate_threshold must be in [0, 1], got " +
                                          std::to_string(x));
        }
        // DuoAttention deployment: each head is either dense (1) or streaming (0).
        auto t = std::make_shared<MixedAdapter>(m);
        for (float& g : t->gates) g = g >= x ? 1.0f : 0.0f;
        s.gates = std::move(t);
        s.gate_threshold = x;
        char buf[32];
        std::snprintf(buf, sizeof buf, "%a", static_cast<double>(x));  // exact, so equal keys mean equal gates
        threshold = buf;
      }
      // KV pages are shared by all layers and heads, so they can only be released when no
      // head of any layer reads beyond the streaming window.
      if (s.gates->all_gates_are(0.0f)) s.release_rule = s.rule;
      s.cache_namespace = "mixed:" + window_key(s.window) + ",threshold=" + threshold + ",adapter=" + adapter->version();
      return s;
    }

    case AttentionImpl::kNsa:
      if (!adapter || adapter->type() != AdapterType::kNsa) {
        return Status::invalid_argument("attention 'nsa' needs an nsa adapter; " +
                                        (adapter ? adapter_label(*adapter) : std::string("the request has no adapter")));
      }
      if (has_window) {
        return Status::invalid_argument(
            "attention 'nsa': sink_window_size, recent_window_size and block_size apply only to 'streaming' and "
            "'mixed' (nsa takes its windows from the adapter)");
      }
      {
        s.impl = AttentionImpl::kNsa;
        s.nsa = adapter->nsa();
        s.cache_namespace = "nsa:" + nsa_config_key(s.nsa->config) + ",adapter=" + adapter->version();
        return s;
      }
  }
  return Status::internal("unhandled attention implementation");
}

const char* attention_kernel_name(const SequenceAttention* seq, const ModelShape& shape) {
  if (seq != nullptr && seq->impl == AttentionImpl::kNsa) return nsa_kernel_name();
  LayerAttentionCall probe;
  probe.num_heads = shape.num_heads;
  probe.num_kv_heads = shape.num_kv_heads;
  if ((seq != nullptr && seq->kernel == AttentionKernel::kReference) || !paged_attention_supports(probe)) {
    return "reference";
  }
  return paged_attention_kernel_name();
}

}  // namespace hotswap
