// Per-sequence attention state: which pattern this sequence uses and with what parameters
// and adapter. Immutable while the sequence runs.
#pragma once

#include "engine/attention_choice.h"

namespace hotswap {

struct SequenceAttention {
  AttentionImpl impl = AttentionImpl::kEager;
};

}  // namespace hotswap
