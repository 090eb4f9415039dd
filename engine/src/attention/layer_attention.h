// The one call the transformer makes per layer and sequence: attention of a run of new
// query tokens over that sequence's paged KV cache (which already holds their own keys).
// What keys each query sees is the sequence's backend's business (attention/attention_backend.h);
// attend() hands each call to it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kv_cache/paged_kv_view.h"

namespace hotswap {

struct SequenceAttention;     // attention/sequence_attention.h
class BackendSequenceState;   // attention/attention_backend.h

// What the forward pass provides besides the rotated query and the cache, for backends that
// ask for it (AttentionBackend::needs_layer_inputs; nsa's compressed branch and gate).
struct LayerInputs {
  const float* q_unrotated = nullptr;  // [num_tokens, H, d] q_proj output (bias included), before RoPE
  const float* k_unrotated = nullptr;  // [num_tokens, Hkv, d] k_proj output (bias included), before RoPE
  const float* attn_input = nullptr;   // [num_tokens, D] post-input_layernorm hidden state
  int hidden_size = 0;                 // D
};

struct LayerAttentionCall {
  int layer = 0;
  const float* q = nullptr;    // [num_tokens, H, d], RoPE applied
  int num_tokens = 0;
  int first_position = 0;      // query i sits at position first_position + i
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  float scale = 1.0f;
  PagedKvView kv;
  const SequenceAttention* seq = nullptr;  // backend + its configuration; nullptr means eager
  BackendSequenceState* state = nullptr;   // the sequence's backend state (may be null)
  LayerInputs inputs{};                    // set when the backend needs them
  float* out = nullptr;        // [num_tokens, H, d]
};

// Hands each call to its sequence's backend (eager when call.seq is null), planning each
// backend's step on the spot: for tests, benchmarks and one-off calls. The forward pass plans
// once per step instead (attention/attention_step.h). Thread-safe for distinct outputs.
void attend(const LayerAttentionCall& call);
void attend_many(const LayerAttentionCall* calls, int num_calls);

// The pattern of call.seq (eager, streaming or mixed) computed by materialising every
// score in double precision: the oracle the fast kernel is tested against.
void attention_reference(const LayerAttentionCall& call);

// Dense causal attention, materialising the scores, whatever call.seq says.
void eager_attention_reference(const LayerAttentionCall& call);

}  // namespace hotswap
