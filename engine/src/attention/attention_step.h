// One model step's attention: each backend present in the step plans once (plan_step), then
// every layer's calls are handed to their backends, grouped so that each backend sees its
// whole share of the batch at once (one parallel region per backend and layer).
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "attention/attention_backend.h"

namespace hotswap {

class AttentionStep {
 public:
  explicit AttentionStep(std::span<const StepChunk> chunks);
  AttentionStep(const AttentionStep&) = delete;
  AttentionStep& operator=(const AttentionStep&) = delete;
  ~AttentionStep();

  // True when some chunk's backend reads LayerAttentionCall::inputs.
  bool needs_layer_inputs() const { return needs_layer_inputs_; }
  // Attends one layer; calls are in any order, each with its chunk's seq and state.
  void attend(std::span<const LayerAttentionCall> calls) const;

 private:
  struct Planned {
    const AttentionBackend* backend;
    std::unique_ptr<StepMetadata> metadata;
  };
  std::vector<Planned> planned_;
  bool needs_layer_inputs_ = false;
};

// The backend serving a chunk or call with this sequence attention (null = eager).
const AttentionBackend& backend_of(const SequenceAttention* seq);

}  // namespace hotswap
