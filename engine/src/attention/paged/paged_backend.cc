#include "attention/paged/paged_backend.h"

#include <vector>

#include <nlohmann/json.hpp>

#include "attention/paged_attention.h"
#include "attention/sequence_attention.h"

namespace hotswap {

Status PagedBackend::check_params(const nlohmann::json& params) const {
  WindowParams p;
  return read_window_params(params, &p);
}

Status PagedBackend::read_ungated_params(const nlohmann::json& params, WindowParams* p) const {
  if (Status s = read_window_params(params, p); !s) return s;
  if (!p->gate_threshold) return Status::ok();
  return Status::invalid_argument(std::string("attention '") + name() +
                                  "': gate_threshold applies only to attention 'mixed'");
}

Status PagedBackend::set_window(const StreamingWindow& base, const WindowParams& p, PagedPattern* pattern) const {
  pattern->window = base;
  apply_window_overrides(p, &pattern->window);
  if (Status s = check_window(pattern->window, name()); !s) return s;
  const StreamingWindow& w = pattern->window;
  pattern->rule = StreamingRule::from_window(w.sink_window_size, w.recent_window_size, w.block_size);
  return Status::ok();
}

SequenceAttention PagedBackend::sequence_attention(std::shared_ptr<const PagedPattern> pattern,
                                                   std::shared_ptr<const Adapter> adapter, std::string cache_namespace,
                                                   std::optional<StreamingRule> release_rule) {
  SequenceAttention s;
  s.config = std::move(pattern);
  s.adapter = std::move(adapter);
  s.cache_namespace = std::move(cache_namespace);
  s.release_rule = release_rule;
  return s;
}

void PagedBackend::attend(std::span<const LayerAttentionCall> calls, const StepMetadata* step) const {
  (void)step;
  std::vector<LayerAttentionCall> fast;
  fast.reserve(calls.size());
  for (const LayerAttentionCall& c : calls) {
    const bool reference = (c.seq != nullptr && c.seq->kernel == AttentionKernel::kReference) ||
                           !paged_attention_supports(c);
    if (reference) attention_reference(c);
    else fast.push_back(c);
  }
  if (!fast.empty()) paged_attention(fast.data(), static_cast<int>(fast.size()));
}

const char* paged_kernel_name(const SequenceAttention* seq, const ModelShape& shape) {
  LayerAttentionCall probe;
  probe.num_heads = shape.num_heads;
  probe.num_kv_heads = shape.num_kv_heads;
  if ((seq != nullptr && seq->kernel == AttentionKernel::kReference) || !paged_attention_supports(probe)) {
    return "reference";
  }
  return paged_attention_kernel_name();
}

const char* PagedBackend::kernel_name(const SequenceAttention& attention, const ModelShape& shape) const {
  return paged_kernel_name(&attention, shape);
}

}  // namespace hotswap
