// The one call the transformer makes per layer and sequence: attention of a run of new
// query tokens over that sequence's paged KV cache (which already holds their own keys).
// What keys each query sees is the sequence's pattern (specs/attention.md); how it is
// computed is the kernel's business.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hotswap {

struct SequenceAttention;  // attention/sequence_attention.h
class NsaSequenceState;   // attention/nsa/nsa_sequence_state.h

// One layer of the paged cache seen through one sequence's block table.
struct PagedKvView {
  const float* k = nullptr;         // layer base, [num_blocks, Hkv, block_size, d]
  const float* v = nullptr;
  const int32_t* blocks = nullptr;  // logical -> physical block (kNoBlock if released)
  int num_logical_blocks = 0;
  int block_size = 0;
  int num_kv_heads = 0;
  int head_dim = 0;

  size_t offset(int pos, int kv_head) const {
    const size_t b = static_cast<size_t>(blocks[pos / block_size]);
    return ((b * num_kv_heads + kv_head) * block_size + pos % block_size) * head_dim;
  }
  const float* key(int pos, int kv_head) const { return k + offset(pos, kv_head); }
  const float* value(int pos, int kv_head) const { return v + offset(pos, kv_head); }
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
  const SequenceAttention* seq = nullptr;  // pattern + adapter; nullptr means eager
  float* out = nullptr;        // [num_tokens, H, d]

  // nsa only (specs/attention.md): what its compressed branch and gate read besides the
  // rotated query and the cache, and the sequence's compressed-block cache.
  const float* q_unrotated = nullptr;  // [num_tokens, H, d] q_proj output (bias included), before RoPE
  const float* k_unrotated = nullptr;  // [num_tokens, Hkv, d] k_proj output (bias included), before RoPE
  const float* attn_input = nullptr;   // [num_tokens, D] post-input_layernorm hidden state
  int hidden_size = 0;                 // D
  NsaSequenceState* nsa_state = nullptr;
};

// Dispatches to the kernel for the sequence's pattern: the paged online-softmax kernel
// (attention/paged_attention.h), or the reference kernel when seq->kernel says so or the
// fast kernel does not support the shape. Runs its own OpenMP parallel region over heads,
// query tokens and (for long single-token decodes) context splits; thread-safe for
// distinct outputs.
void attend(const LayerAttentionCall& call);

// The same for several sequences of one layer at once (a decode batch): one parallel
// region over all their heads, tokens and splits. Equivalent to attend() on each call.
void attend_many(const LayerAttentionCall* calls, int num_calls);

// The pattern of call.seq (eager, streaming or mixed) computed by materialising every
// score in double precision: the oracle the fast kernel is tested against.
void attention_reference(const LayerAttentionCall& call);

// Dense causal attention, materialising the scores, whatever call.seq says.
void eager_attention_reference(const LayerAttentionCall& call);

}  // namespace hotswap
