// The `nsa` pattern (specs/attention.md `nsa`) as served: for each new query token at
// position t and each query head, three branches over one sequence's caches, mixed by the
// adapter's gate:
//   compressed  [memory tokens] + the compressed blocks j with j*s + l - 1 <= t, read from the
//               sequence's compressed-block cache (NsaSequenceState), never recomputed;
//   selected    the keys <= t of the n selection blocks chosen by the GQA group's importance
//               (forced block 0, current, previous, then by importance), from the paged KV cache;
//   sliding     the keys (t - w, t] from the paged KV cache;
//   out = g_cmp * o_cmp + g_sel * o_sel + g_win * o_win, g = sigmoid(W_g x + b_g) per head.
// Everything is float32 with float32 accumulation.
//
// Before any query of the call is attended, every compressed block that completes inside the
// call (j*s + l - 1 in [first_position, first_position + num_tokens)) is computed, for all
// KV heads at once and in tiles of blocks (a prefill compresses its whole prompt in one
// pass), and appended to the cache. A decode step therefore costs O(t/s) for the compressed
// branch plus O(n*l' + w) for the others, plus one block's compression every s tokens.
//
// Threading: called on the engine thread, outside any parallel region; runs its own OpenMP
// regions: blocks x KV heads for compression, then per tile of queries four work-shared
// phases (compressed scores per (token, KV group, chunk of cached blocks); the softmaxes,
// importance and selection per (token, KV group); compressed values per (token, KV group,
// chunk) beside the selected and sliding branches per (token, KV group, branch); the gate and
// output per (token, head)), so that a single decode token keeps every thread busy while each
// cached, selected or windowed key is read once per group, not once per query head. The
// selected and sliding branches run on the paged attention kernel of the active ISA
// (attention/paged_attention_kernel.h: AVX-512, AVX2 or scalar, chosen at run time).
// Mutates `state` (the pages and recent keys of call.layer); distinct sequences' states may
// not be shared.
#pragma once

#include "adapters/nsa_adapter.h"
#include "attention/layer_attention.h"
#include "attention/nsa/nsa_sequence_state.h"

namespace hotswap {

// What the forward pass provides for an nsa layer beyond LayerAttentionCall (whose q is the
// rotated query and whose KV cache already holds the new tokens' rotated keys and values).
struct NsaLayerInputs {
  // [num_tokens, H, d]: the q_proj output, bias included, before RoPE. Read only when
  // compress_rope is "pre" (the compressed branch's query).
  const float* q_unrotated = nullptr;
  // [num_tokens, Hkv, d]: the k_proj output, bias included, before RoPE, at the precision the
  // KV cache stores. Read only when compress_rope is "pre" (the keys that are compressed).
  const float* k_unrotated = nullptr;
  // [num_tokens, D]: the layer's attention input, the post-input_layernorm hidden state (the
  // gate's input).
  const float* x = nullptr;
  int hidden_size = 0;  // D
};

// Attends call.num_tokens queries at positions first_position.. of call.layer with the NSA
// pattern of `adapter` and writes call.out [num_tokens, H, d]. `state` must belong to
// `adapter` and have seen exactly positions [0, first_position) of this layer. call.seq is
// not read.
void nsa_attend(const LayerAttentionCall& call, const NsaLayerInputs& extra, const NsaAdapter& adapter,
                NsaSequenceState& state);

// The first half of nsa_attend() alone: appends the call's tokens to `state` (compressing the
// blocks they complete, keeping the recent un-rotated keys) without attending; call.q,
// call.out, extra.q_unrotated and extra.x are not read. For benchmarks and tests that need a
// long context's cache without paying for its prefill attention.
void nsa_update_cache(const LayerAttentionCall& call, const NsaLayerInputs& extra, const NsaAdapter& adapter,
                      NsaSequenceState& state);

// For usage and metrics: the kernel nsa_attend() runs.
const char* nsa_kernel_name();

}  // namespace hotswap
