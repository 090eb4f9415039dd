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

// Σ_{i<d} term(i) in float32 as 16 partial sums (lane l takes i = l mod 16 of the whole
// 16-blocks, the rest a tail), reduced in a fixed order: vectorises, and gives the same value
// wherever and however often it is computed. A chained sum waits on the add latency at every
// term (for d 64 ~256 cycles, by that latency: a MagicPig weight computed two such sums).
template <class Term>
inline float sum16(int d, Term term) {
  float acc[16] = {};
  int i = 0;
  for (; i + 16 <= d; i += 16)
    for (int l = 0; l < 16; ++l) acc[l] += term(i + l);
  float tail = 0.0f;
  for (; i < d; ++i) tail += term(i);
  for (int l = 0; l < 8; ++l) acc[l] += acc[l + 8];
  for (int l = 0; l < 4; ++l) acc[l] += acc[l + 4];
  return (acc[0] + acc[2]) + (acc[1] + acc[3]) + tail;
}

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

// ||x|| in float32 (sum16's order), the norm every MagicPig formula uses.
float lsh_norm(const float* x, int d);

// Codes of one transformed vector v[0..rows) (rows = d + 1): code t = sum_{i<K} (v.P[:, t*K+i] > 0) << i.
void lsh_codes(const float* v, const float* projection, int rows, int tables, int bits, uint64_t* codes);

// MagicPig's weight for a key (Part 2 §5.2 step 5): q_unit = q̃/(||q̃|| + 1e-8) with q̃ =
// [qc/(||qc|| + 1e-8), 0]; k̃ = [kc/M, sqrt(M² - ||kc||²)/M]; p = 1 - (1 - (1 - acos(cos)/pi)^K)^L.
// `q_unit` is [d] (its last component is 0); `kc` the centred key.
float lsh_collision_probability(const float* q_unit, const float* kc, int d, float max_norm, int tables, int bits);
// Its two halves, for a run of keys: the clamped cosine of q_unit and k̃, then, in place over
// n cosines, the probabilities (the same values as one lsh_collision_probability a key).
float lsh_cosine(const float* q_unit, const float* kc, int d, float max_norm);
void lsh_probabilities(float* x, int n, int tables, int bits);

// ---- Quest ----

// Σ_d max(q_d * mn_d, q_d * mx_d) in float32, in sum16's order.
float quest_bound(const float* q, const float* mn, const float* mx, int d);

// The reference's pseudo_quantize of one vector to `bits` bits (Part 2 §6.4), in place.
void pseudo_quantize(float* x, int d, int bits);

}  // namespace hotswap::masked
