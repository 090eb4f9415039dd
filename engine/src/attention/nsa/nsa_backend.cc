#include "attention/nsa/nsa_backend.h"

#include <nlohmann/json.hpp>

#include "attention/nsa/compressed_block_pool.h"
#include "attention/nsa/nsa_attention.h"
#include "attention/nsa/nsa_sequence_state.h"
#include "attention/paged/paged_pattern.h"
#include "attention/sequence_attention.h"
#include "core/check.h"

namespace hotswap {
namespace {

struct NsaBackendConfig : BackendConfig {
  std::shared_ptr<const NsaAdapter> adapter;
};

class NsaBackend final : public AttentionBackend {
 public:
  const char* name() const override { return "nsa"; }
  bool chosen_by_auto_for(std::optional<AdapterType> type) const override { return type == AdapterType::kNsa; }

  // nsa takes its windows from the adapter, but names the request's window fields in its
  // errors rather than calling them unknown.
  Status check_params(const nlohmann::json& params) const override {
    WindowParams p;
    return read_window_params(params, &p);
  }

  Result<SequenceAttention> resolve(const nlohmann::json& params, std::shared_ptr<const Adapter> adapter,
                                    const ModelShape& shape) const override {
    (void)shape;
    WindowParams p;
    if (Status s = read_window_params(params, &p); !s) return s;
    if (p.gate_threshold) return Status::invalid_argument("attention 'nsa': gate_threshold applies only to attention 'mixed'");
    if (!adapter || adapter->type() != AdapterType::kNsa) {
      return Status::invalid_argument("attention 'nsa' needs an nsa adapter; " +
                                      (adapter ? adapter_label(*adapter) : std::string("the request has no adapter")));
    }
    if (p.has_window()) {
      return Status::invalid_argument(
          "attention 'nsa': sink_window_size, recent_window_size and block_size apply only to 'streaming' and "
          "'mixed' (nsa takes its windows from the adapter)");
    }
    auto config = std::make_shared<NsaBackendConfig>();
    config->adapter = adapter->nsa();
    SequenceAttention s;
    // The compressed-block cache is per sequence and not shared, so neither is the KV.
    s.cache_namespace.clear();
    s.adapter = std::move(adapter);
    s.config = std::move(config);
    return s;
  }

  std::unique_ptr<BackendSequenceState> new_state(const SequenceAttention& attention, const SequenceFacts& facts,
                                                  BackendResources& resources) const override {
    CompressedBlockPool& pool = resources.shared<CompressedBlockPool>(this, [&] {
      return std::make_shared<CompressedBlockPool>(resources.shape().num_kv_heads, resources.shape().head_dim);
    });
    auto state = std::make_unique<NsaSequenceState>(config_of(attention).adapter, pool);
    state->set_prompt_length(facts.num_prompt_tokens);
    return state;
  }

  // The compressed-block cache, in pages of the pool new_state() makes (default entries).
  int64_t state_bytes(const SequenceAttention& attention, const ModelShape& shape,
                      int64_t num_positions) const override {
    return NsaSequenceState::bytes_for(*config_of(attention).adapter, shape, num_positions);
  }

  bool needs_layer_inputs(const SequenceAttention& attention) const override {
    (void)attention;
    return true;
  }

  void attend(std::span<const LayerAttentionCall> calls, const StepMetadata* step) const override {
    (void)step;
    // NSA runs its own parallel regions and updates the sequence's compressed cache.
    for (const LayerAttentionCall& c : calls) {
      HS_CHECK(c.seq != nullptr && c.state != nullptr && c.inputs.q_unrotated && c.inputs.k_unrotated &&
               c.inputs.attn_input)
          << "nsa attention without its inputs";
      nsa_attend(c, NsaLayerInputs{c.inputs.q_unrotated, c.inputs.k_unrotated, c.inputs.attn_input, c.inputs.hidden_size},
                 *config_of(*c.seq).adapter, static_cast<NsaSequenceState&>(*c.state));
    }
  }

  const char* kernel_name(const SequenceAttention& attention, const ModelShape& shape) const override {
    (void)attention, (void)shape;
    return nsa_kernel_name();
  }

 private:
  static const NsaBackendConfig& config_of(const SequenceAttention& s) {
    return static_cast<const NsaBackendConfig&>(*s.config);
  }
};

}  // namespace

const AttentionBackend& nsa_backend() {
  static const NsaBackend backend;
  return backend;
}

}  // namespace hotswap
