// The fast kernel behind attend(): it walks each query's visible keys page by page in tiles
// of up to kTileKeys positions, keeping an online softmax (running max m, sum l and
// un-normalised output acc) per query head and branch, so scores are never materialised
// beyond one tile. Work items are (call, query token, KV head[, context split]); the H/Hkv
// query heads of a KV head share each K/V row load. A single decode token over a long
// context is split along the context (flash-decoding) so that all threads have work; the
// splits' states are merged exactly afterwards. A prompt chunk whose group is dense (eager, or
// mixed with every gate 1) runs in prefill blocks instead: several tokens of one KV head per
// item, each K/V row loaded once for all of them (paged_prefill_simd.inc), with each token's
// output bit for bit the one-token item's.
//
// Patterns: eager walks [0, t]; streaming walks the sink and local ranges of StreamingRule;
// mixed walks [0, t] once when some head of the group needs the dense branch, feeding the
// streaming branch only from the tiles inside the window, and skips the dense branch for
// heads with gate 0 and the streaming branch for heads with gate 1.
//
// The vector code is compiled three times (AVX-512, AVX2+FMA, scalar) and chosen at run
// time by kernels::active_isa(). OpenMP parallel region inside; engine thread calls it.
#pragma once

#include "attention/layer_attention.h"

namespace hotswap {

// Computes every call with the fast kernel. Calls the fast kernel cannot run (see
// paged_attention_supports) must not be passed.
void paged_attention(const LayerAttentionCall* calls, int num_calls);

// False for shapes the fast kernel does not handle (query heads per KV head above
// kMaxGroup); attend() runs the reference kernel for them.
bool paged_attention_supports(const LayerAttentionCall& call);

// "paged_flash_avx512", "paged_flash_avx2" or "paged_flash_scalar": the variant the current
// ISA selects.
const char* paged_attention_kernel_name();

}  // namespace hotswap
