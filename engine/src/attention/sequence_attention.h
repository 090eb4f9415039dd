// Per-sequence attention state: which pattern this sequence uses (specs/attention.md), with
// what windows, gates and adapter, and which kernel computes it. Built once by
// resolve_attention() when the request is admitted and immutable while the sequence runs;
// the engine thread owns it and attention worker threads read it.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "adapters/adapter.h"
#include "adapters/mixed_adapter.h"
#include "adapters/model_shape.h"
#include "adapters/nsa_adapter.h"
#include "engine/attention_choice.h"
#include "engine/status.h"
#include "kv_cache/streaming_rule.h"

namespace hotswap {

// How attend() computes the pattern: the paged online-softmax kernel, or the reference
// kernel that materialises the scores (tests, and any case the fast kernel cannot run).
enum class AttentionKernel { kFast, kReference };

struct SequenceAttention {
  AttentionImpl impl = AttentionImpl::kEager;  // never kAuto once resolved
  StreamingWindow window;                      // streaming and mixed
  StreamingRule rule;                          // `window` as positions (streaming and mixed)
  // mixed: the gates attend() applies, [num_layers][num_heads] per query head. With
  // gate_threshold they are already thresholded to 0/1 (DuoAttention deployment).
  std::shared_ptr<const MixedAdapter> gates;
  // nsa: the adapter's configuration and weights (its per-sequence compressed-block cache
  // lives with the sequence, not here: this struct is read-only while the sequence runs).
  std::shared_ptr<const NsaAdapter> nsa;
  std::optional<float> gate_threshold;
  // The adapter the request pinned (any type), kept alive while the sequence runs.
  std::shared_ptr<const Adapter> adapter;
  // Set when every layer and head reads only the streaming window, so KV pages outside it
  // can be released (KvCacheManager::release_invisible): `streaming`, or `mixed` whose
  // effective gates are all 0. Unset: keep all KV.
  std::optional<StreamingRule> release_rule;
  // Prefix-cache namespace: implementation, its parameters and the adapter version. KV
  // computed under one namespace is never shared with another (specs/attention.md).
  std::string cache_namespace = "eager";
  AttentionKernel kernel = AttentionKernel::kFast;
};

// The request's choice + its adapter (may be null) -> the sequence's attention, applying
// specs/api.md: `auto` picks from the adapter type (mixed -> mixed, nsa -> nsa, none ->
// eager); an explicit choice that cannot run is an InvalidArgument that says why, never a
// substitute. Window parameters given by the request override the adapter's (mixed) or the
// defaults 128/1024/128 (streaming); they are rejected for eager. `gate_threshold` only
// applies to mixed. The adapter must have been validated against `shape`.
Result<SequenceAttention> resolve_attention(const AttentionChoice& choice, std::shared_ptr<const Adapter> adapter,
                                            const ModelShape& shape);

// Name of the kernel attend() runs for this sequence (nullptr = eager) on this model, for
// the response's usage and metrics: "paged_flash_avx512" / "paged_flash_avx2" /
// "paged_flash_scalar", or "reference" (asked for, or a shape the fast kernel lacks).
const char* attention_kernel_name(const SequenceAttention* seq, const ModelShape& shape);

}  // namespace hotswap
