// Attention implementations as plug-ins. Every implementation (eager, streaming, mixed, nsa,
// masked) is one AttentionBackend, registered in attention/backend_registry.cc; the forward
// pass, the scheduler and the engine talk to this interface only. A backend
//   - checks and resolves a request's parameters (with the adapter and the model shape) into
//     the sequence's SequenceAttention, or says why it cannot run;
//   - says with whom its KV may share prefixes (SequenceAttention::cache_namespace) and which
//     pages no query will read again (release_rule);
//   - owns the sequence's state beside the KV cache (BackendSequenceState), which is told when
//     keys are written and when the sequence is preempted, and is freed with the sequence;
//   - builds its per-step metadata once per step (plan_step), then attends each layer's batch
//     of queries over the paged cache (attend).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "adapters/adapter.h"
#include "adapters/model_shape.h"
#include "attention/backend_resource.h"
#include "attention/layer_attention.h"
#include "engine/status.h"
#include "engine/token_stream.h"

namespace hotswap {

struct SequenceAttention;

// A backend's resolved request parameters; immutable while the sequence runs.
struct BackendConfig {
  virtual ~BackendConfig() = default;
};

// A backend's mutable per-sequence state; engine thread only, except inside attend().
class BackendSequenceState {
 public:
  virtual ~BackendSequenceState() = default;
  // The forward pass wrote the keys of positions [first, first + count) of `layer` into the
  // cache (before attending them).
  virtual void on_keys_written(int layer, int first, int count) {
    (void)layer, (void)first, (void)count;
  }
  // The sequence lost its KV and will be recomputed from position 0.
  virtual void on_preempted() {}
  // What the backend reports in the response's usage (masked: density, output error).
  virtual void add_usage(StreamUsage* usage) const { (void)usage; }
};

// Objects the backends share across the sequences of one engine (NSA's compressed-block pool,
// the maskers' summary pool). Keyed by owner (a backend); created on first use.
class BackendResources {
 public:
  explicit BackendResources(const ModelShape& shape) : shape_(shape) {}
  const ModelShape& shape() const { return shape_; }
  // T derives from BackendResource; make() returns a shared_ptr<T>.
  template <typename T, typename Make>
  T& shared(const void* owner, Make make) {
    for (auto& [key, object] : objects_)
      if (key == owner) return static_cast<T&>(*object);
    objects_.emplace_back(owner, std::shared_ptr<BackendResource>(make()));
    return static_cast<T&>(*objects_.back().second);
  }
  // Memory the backends hold for sequences beside the KV cache (engine thread).
  int64_t bytes_in_use() const {
    int64_t n = 0;
    for (const auto& [key, object] : objects_) n += object->bytes_in_use();
    return n;
  }

 private:
  ModelShape shape_;
  std::vector<std::pair<const void*, std::shared_ptr<BackendResource>>> objects_;
};

// What a backend may need to know about the sequence whose state it makes.
struct SequenceFacts {
  uint64_t seed = 0;          // the request's seed, or the one drawn for it
  int num_prompt_tokens = 0;  // positions below this are the prompt
};

// One sequence's chunk in a step, as plan_step() sees it.
struct StepChunk {
  const SequenceAttention* attention = nullptr;
  BackendSequenceState* state = nullptr;
  int first_position = 0;
  int num_tokens = 0;
};

// What a backend computes once per step and reads in every layer's attend().
struct StepMetadata {
  virtual ~StepMetadata() = default;
};

class AttentionBackend {
 public:
  virtual ~AttentionBackend() = default;

  // The name requests use ("eager", "masked", ...).
  virtual const char* name() const = 0;
  // `auto` picks this backend for a request whose adapter has this type (nullopt: a request
  // without an adapter).
  virtual bool chosen_by_auto_for(std::optional<AdapterType> type) const {
    (void)type;
    return false;
  }
  // Checks the request's attention object (null when the request gave only the name) before
  // any adapter is known: unknown fields, JSON types and ranges, each named in the message.
  virtual Status check_params(const nlohmann::json& params) const = 0;
  // The request's parameters + its adapter (may be null) + the model -> the sequence's
  // attention, or InvalidArgument saying why this backend cannot run it (never a substitute).
  virtual Result<SequenceAttention> resolve(const nlohmann::json& params, std::shared_ptr<const Adapter> adapter,
                                            const ModelShape& shape) const = 0;
  // The sequence's state (null: the backend keeps none).
  virtual std::unique_ptr<BackendSequenceState> new_state(const SequenceAttention& attention,
                                                          const SequenceFacts& facts,
                                                          BackendResources& resources) const {
    (void)attention, (void)facts, (void)resources;
    return nullptr;
  }
  // Bytes of this backend's shared pools (key summaries, compressed caches) that one sequence
  // with this attention holds once it covers positions [0, num_positions), at most. The
  // scheduler charges them against the KV pool (KvCacheManager::hold_state_bytes), so memory
  // beside the KV cache is admitted, preempted and refused like the KV itself.
  virtual int64_t state_bytes(const SequenceAttention& attention, const ModelShape& shape,
                              int64_t num_positions) const {
    (void)attention, (void)shape, (void)num_positions;
    return 0;
  }
  // True when attend() reads LayerAttentionCall::inputs (the un-rotated q/k, the layer input).
  virtual bool needs_layer_inputs(const SequenceAttention& attention) const {
    (void)attention;
    return false;
  }
  // Once per step, before layer 0, for this backend's chunks of the step.
  virtual std::unique_ptr<StepMetadata> plan_step(std::span<const StepChunk> chunks) const {
    (void)chunks;
    return nullptr;
  }
  // One layer for this backend's sequences of the step; calls[i].state and .seq are set.
  virtual void attend(std::span<const LayerAttentionCall> calls, const StepMetadata* step) const = 0;
  // The kernel attend() runs for this sequence on this model (usage and metrics).
  virtual const char* kernel_name(const SequenceAttention& attention, const ModelShape& shape) const = 0;
};

}  // namespace hotswap
