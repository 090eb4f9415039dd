// `masked`: sparse-attention-hub's research maskers served per request (specs/maskers.md
// Part 1): an ordered masker list decides, per query head, which keys each generated token
// (and, with sparse_prefill, each prompt token) attends and with what weight; the sparse
// kernel then reads only those keys' K and V rows from the paged cache.
#pragma once

#include "attention/attention_backend.h"

namespace hotswap {

const AttentionBackend& masked_backend();

}  // namespace hotswap
