// The common half of the backends the paged online-softmax kernel serves (eager, streaming,
// mixed): their request fields, their attend() (the fast kernel, or the reference kernel when
// the sequence asks for it or the shape is beyond the fast kernel) and kernel name. Each
// pattern's backend adds its name and resolve().
#pragma once

#include "attention/attention_backend.h"
#include "attention/paged/paged_pattern.h"

namespace hotswap {

class PagedBackend : public AttentionBackend {
 public:
  Status check_params(const nlohmann::json& params) const override;
  void attend(std::span<const LayerAttentionCall> calls, const StepMetadata* step) const override;
  const char* kernel_name(const SequenceAttention& attention, const ModelShape& shape) const override;

 protected:
  // The request's window fields, for a pattern without gates: gate_threshold is an error
  // ("attention 'X': gate_threshold applies only to attention 'mixed'").
  Status read_ungated_params(const nlohmann::json& params, WindowParams* p) const;
  // pattern->window <- `base` with the request's overrides, range-checked; pattern->rule from it.
  Status set_window(const StreamingWindow& base, const WindowParams& p, PagedPattern* pattern) const;
  // The sequence attention of a resolved pattern.
  static SequenceAttention sequence_attention(std::shared_ptr<const PagedPattern> pattern,
                                              std::shared_ptr<const Adapter> adapter, std::string cache_namespace,
                                              std::optional<StreamingRule> release_rule = std::nullopt);
};

// The kernel the paged family runs for `seq` (nullptr = eager) on this model.
const char* paged_kernel_name(const SequenceAttention* seq, const ModelShape& shape);

}  // namespace hotswap
