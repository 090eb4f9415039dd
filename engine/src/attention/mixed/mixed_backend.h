// `mixed`: AReaL's learned per-head gate between dense and streaming attention
// (specs/attention.md), with an optional DuoAttention-style gate_threshold.
#pragma once

#include "attention/attention_backend.h"

namespace hotswap {

const AttentionBackend& mixed_backend();

}  // namespace hotswap
