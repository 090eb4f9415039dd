// Compression of NSA blocks (specs/attention.md `nsa`, step 1): block j of a KV head covers
// positions [j*s, j*s + l); with x_i = k[j*s + i] + P[i] (P the side's position embedding of
// that KV head), `max_pool` gives max_i x_i elementwise and `mlp` gives
// W2 · relu(W1 · x + b1) + b2 with x the row-major flattening of the [l, d] block.
//
// Used by the compressed-block cache (attention/nsa/nsa_attention.cc) and the reference
// (attention/nsa/nsa_reference.cc) alike; a block's result depends only on its inputs, not on
// how many blocks are compressed together. Pure functions; thread-safe.
#pragma once

#include "adapters/nsa_adapter.h"

namespace hotswap::nsa_detail {

// x[i*d + c] = rows[i][c] + pos_emb[i*d + c] for i < l: one block's input. `pos_emb` is the
// KV head's [l, d] slice of NsaCompressor::pos_emb.
void add_position_embedding(const float* const* rows, const float* pos_emb, int l, int d, float* x);

// Compresses `num_blocks` blocks of KV head `kv_head`: x is [num_blocks, l*d] (inputs from
// add_position_embedding), out is [num_blocks, d]. `scratch` holds
// compress_scratch_floats(num_blocks, hidden) floats (unused for max_pool). MLP weights are
// read once per tile of blocks, which is what makes a prefill of many blocks fast.
void compress_blocks(const NsaCompressor& side, int kv_head, int l, int d, int hidden, const float* x,
                     int num_blocks, float* scratch, float* out);

inline long compress_scratch_floats(int num_blocks, int hidden) { return static_cast<long>(num_blocks) * hidden; }

}  // namespace hotswap::nsa_detail
