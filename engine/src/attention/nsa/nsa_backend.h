// `nsa`: Native Sparse Attention's three branches with the sequence's compressed-block cache
// (specs/attention.md `nsa`), configured and weighted by an nsa adapter.
#pragma once

#include "attention/attention_backend.h"

namespace hotswap {

const AttentionBackend& nsa_backend();

}  // namespace hotswap
