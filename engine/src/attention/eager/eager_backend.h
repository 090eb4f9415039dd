// `eager`: dense causal attention over every earlier key (specs/attention.md); the pattern a
// request without an adapter gets from `auto`.
#pragma once

#include "attention/attention_backend.h"

namespace hotswap {

const AttentionBackend& eager_backend();

}  // namespace hotswap
