// The reference kernel of the `masked` implementation (specs/maskers.md Part 1 "Composition
// and the output"): materialises every weighted score in double precision. It is what the
// serving kernel and the reference fixtures are held to, and computes the dense output that
// `report_error` compares against. Not a serving path. Pure; thread-safe.
#pragma once

#include <cstddef>
#include <vector>

#include "attention/masked/select_keys.h"
#include "kv_cache/paged_kv_view.h"

namespace hotswap::masked {

// out[h] = softmax over the selected j of (scale * q_h . k_j - log(w_j + 1e-6)) . v_j; a dense
// head is plain causal softmax over keys 0..t. Query head h reads KV head h / (num_heads /
// kv.num_kv_heads). Accumulates in double, writes float. out: [num_heads, head_dim].
void masked_attention_reference(const float* q, int num_heads, const PagedKvView& kv, const QueryContext& ctx,
                                const std::vector<HeadSelection>& sel, float* out);

// Dense causal attention of the query at ctx.position over keys 0..t (double accumulation).
void dense_attention_reference(const float* q, int num_heads, const PagedKvView& kv, const QueryContext& ctx,
                               float* out);

// The density of one query: the mean over heads of (selected keys) / (t + 1). Decision: a
// dense head counts 1.0 (it reads every key), also where the reference's get_density reports
// 0 for an EMPTY mask.
double selection_density(const std::vector<HeadSelection>& sel, int position);

// ||dense - approx||_2 / ||dense||_2 over n floats (the reference's
// research_attention_output_error of one call; 0 when both are zero).
double relative_l2_error(const float* dense, const float* approx, size_t n);

}  // namespace hotswap::masked
