// Importance and block selection (specs/attention.md `nsa`, step 3), for one query position
// and one GQA group. Shared by the serving kernel and the reference. Pure functions;
// thread-safe.
#pragma once

#include <cstdint>

#include "adapters/nsa_adapter.h"

namespace hotswap::nsa_detail {

// Adds to importance[b] (b < num_selection_blocks) the probability p[j] of every existing
// compressed block j < num_compressed that overlaps selection block b: block j covers
// [j*s, j*s + l) and selection block b covers [b*l', (b+1)*l'), so j adds its whole p[j] to
// b = floor(j*s / l') .. floor((j*s + l - 1) / l') (a block across a boundary counts for
// both). Blocks no compressed block overlaps keep what they had.
void add_block_importance(const float* p, int64_t num_compressed, const NsaConfig& c, int64_t num_selection_blocks,
                          float* importance);

// The GQA group's importance of each selection block: every head's importance (from its own
// probabilities, p + a * p_stride for head a < group) summed over the heads in head order.
// `head_scratch` and `out` hold num_selection_blocks floats each.
void group_importance(const float* p, int group, int64_t p_stride, int64_t num_compressed, const NsaConfig& c,
                      int64_t num_selection_blocks, float* head_scratch, float* out);

// The selection blocks a query at position t attends, in ascending order, into `out`
// (room for min(n, floor(t/l') + 1) entries); returns their count. Among blocks
// b <= floor(t/l'): all of them when there are at most n; otherwise block 0, block
// floor(t/l'), block floor(t/l') - 1 (each once, until n are chosen), then the rest by
// `importance` (num_selection_blocks = floor(t/l') + 1 floats), highest first, exactly equal
// float32 values going to the lower index. `scratch` holds floor(t/l') + 1 ints.
int select_blocks(const float* importance, int64_t t, const NsaConfig& c, int32_t* scratch, int32_t* out);

}  // namespace hotswap::nsa_detail
