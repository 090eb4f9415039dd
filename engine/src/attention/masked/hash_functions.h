// The per-vector functions of the summarising maskers (specs/maskers.md Part 2 §4.6, §5.2,
// §6), in the reference's float32 arithmetic: HashAttention's MLP signature, MagicPig's
// projections, MIPS transform, codes and collision probability, and Quest's page bounds.
// Pure and thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "adapters/hashattention_adapter.h"

namespace hotswap::masked {

// ---- HashAttention ----

// sign(MLP_h(x)) packed: bit i set iff output i > 0 (the reference's sign is 0 only for an
// output of exactly 0, which scores as a mismatch here). `mlp` is one side (query or key) of
// one layer; `scratch` grows to twice the widest layer.
uint64_t hash_signature(const std::vector<HashLinear>& mlp, HashActivation activation, int head, const float* x,
                        std::vector<float>& scratch);

// hash_signature of up to kHashBatch keys at once (rows[i] -> out[i]), bit for bit the same:
// each weight row is read once per batch instead of once per key (the prompt's keys are
// hashed this way when they are written).
inline constexpr int kHashBatch = 16;
void hash_signatures(const std::vector<HashLinear>& mlp, HashActivation activation, int head, const float* const* rows,
                     int n, uint64_t* out, std::vector<float>& scratch);

// sig_q . sig_k for ±1 signatures of `bits` bits: bits - 2 * hamming.
inline int signature_score(uint64_t a, uint64_t b, int bits) {
  return bits - 2 * __builtin_popcountll(a ^ b);
}

// ---- MagicPig ----

// The (d + 1) x (L*K) standard-normal projection of `layer`, drawn from the counter-based
// generator keyed by seed + layer (Box-Muller over Philox words): row-major [rows, columns].
std::vector<float> lsh_projection(int64_t seed, int layer, int rows, int columns);

// ||x|| in float32 (fixed order), the norm every MagicPig formula uses.
float lsh_norm(const float* x, int d);

// Codes of one transformed vector v[0..rows) (rows = d + 1): code t = sum_{i<K} (v.P[:, t*K+i] > 0) << i.
void lsh_codes(const float* v, const float* projection, int rows, int tables, int bits, uint64_t* codes);

// MagicPig's weight for a key (Part 2 §5.2 step 5): q_unit = q̃/(||q̃|| + 1e-8) with q̃ =
// [qc/(||qc|| + 1e-8), 0]; k̃ = [kc/M, sqrt(M² - ||kc||²)/M]; p = 1 - (1 - (1 - acos(cos)/pi)^K)^L.
// `q_unit` is [d] (its last component is 0); `kc` the centred key.
float lsh_collision_probability(const float* q_unit, const float* kc, int d, float max_norm, int tables, int bits);

// ---- Quest ----

// Σ_d max(q_d * mn_d, q_d * mx_d) in float32.
float quest_bound(const float* q, const float* mn, const float* mx, int d);

// The reference's pseudo_quantize of one vector to `bits` bits (Part 2 §6.4), in place.
void pseudo_quantize(float* x, int d, int bits);

}  // namespace hotswap::masked
