#include "attention/attention_step.h"

#include "attention/backend_registry.h"
#include "attention/sequence_attention.h"

namespace hotswap {

const AttentionBackend& backend_of(const SequenceAttention* seq) {
  return seq != nullptr && seq->backend != nullptr ? *seq->backend : default_attention_backend();
}

AttentionStep::AttentionStep(std::span<const StepChunk> chunks) {
  std::vector<StepChunk> mine;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const AttentionBackend* backend = &backend_of(chunks[i].attention);
    bool seen = false;
    for (const Planned& p : planned_) seen |= p.backend == backend;
    if (seen) continue;
    mine.clear();
    for (size_t j = i; j < chunks.size(); ++j)
      if (&backend_of(chunks[j].attention) == backend) mine.push_back(chunks[j]);
    planned_.push_back({backend, backend->plan_step(mine)});
  }
  for (const StepChunk& c : chunks)
    needs_layer_inputs_ |= c.attention != nullptr && backend_of(c.attention).needs_layer_inputs(*c.attention);
}

AttentionStep::~AttentionStep() = default;

void AttentionStep::attend(std::span<const LayerAttentionCall> calls) const {
  std::vector<LayerAttentionCall> mine;
  for (const Planned& p : planned_) {
    mine.clear();
    for (const LayerAttentionCall& c : calls)
      if (c.num_tokens > 0 && &backend_of(c.seq) == p.backend) mine.push_back(c);
    if (!mine.empty()) p.backend->attend(mine, p.metadata.get());
  }
}

void attend(const LayerAttentionCall& call) { attend_many(&call, 1); }

void attend_many(const LayerAttentionCall* calls, int num_calls) {
  std::vector<StepChunk> chunks;
  for (int i = 0; i < num_calls; ++i)
    chunks.push_back(StepChunk{calls[i].seq, calls[i].state, calls[i].first_position, calls[i].num_tokens});
  AttentionStep(chunks).attend(std::span(calls, static_cast<size_t>(num_calls)));
}

}  // namespace hotswap
