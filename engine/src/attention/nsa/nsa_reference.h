// The `nsa` pattern (specs/attention.md `nsa`) computed from scratch from a sequence's raw,
// contiguous q/k/v: every compressed block is recomputed from the keys and values, nothing is
// cached or paged. The oracle the serving kernel (nsa_attend) is tested against; slow.
//
// It shares with the serving kernel only the float32 primitives whose association order must
// not differ for block selections to agree bit for bit (attention/nsa/nsa_math.h), block
// compression and the importance/selection rules. Pure function; thread-safe.
#pragma once

#include <cstdint>
#include <vector>

#include "adapters/nsa_adapter.h"

namespace hotswap {

// One layer of one sequence, positions 0..num_tokens-1.
struct NsaReferenceInputs {
  int num_tokens = 0;
  int num_heads = 0;     // H
  int num_kv_heads = 0;  // Hkv
  int head_dim = 0;      // d
  int hidden_size = 0;   // D
  float scale = 1.0f;
  const float* q = nullptr;            // [T, H, d], RoPE applied
  const float* q_unrotated = nullptr;  // [T, H, d], before RoPE ("pre" only)
  const float* k = nullptr;            // [T, Hkv, d], RoPE applied (as the KV cache holds them)
  const float* k_unrotated = nullptr;  // [T, Hkv, d], before RoPE ("pre" only)
  const float* v = nullptr;            // [T, Hkv, d]
  const float* x = nullptr;            // [T, D], the attention input (the gate's)
};

// What the reference decided, for tests.
struct NsaReferenceTrace {
  std::vector<std::vector<int32_t>> selected;  // [T * Hkv]: selection blocks of (t, group), ascending
  std::vector<float> gates;                    // [T, H, 3]
  std::vector<float> branches;                 // [T, H, 3, d]: o_cmp, o_sel, o_win
  std::vector<float> compressed_keys;          // [num_compressed_blocks(T), Hkv, d]
  std::vector<float> compressed_values;        // [num_compressed_blocks(T), Hkv, d]
};

// Writes out [T, H, d] for layer `layer` of `adapter`.
void nsa_attention_reference(const NsaReferenceInputs& in, const NsaAdapter& adapter, int layer, float* out,
                             NsaReferenceTrace* trace = nullptr);

}  // namespace hotswap
