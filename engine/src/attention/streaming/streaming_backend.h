// `streaming`: StreamingLLM's sink + recent window, block-granular (specs/attention.md). KV
// pages that fall out of the window are released.
#pragma once

#include "attention/attention_backend.h"

namespace hotswap {

const AttentionBackend& streaming_backend();

}  // namespace hotswap
