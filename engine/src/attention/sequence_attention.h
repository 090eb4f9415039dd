// Per-sequence attention: which backend serves the sequence, with what resolved parameters
// and adapter, how its KV may be shared and released, and which kernel computes it. Built
// once by resolve_attention() when the request is admitted and immutable while the sequence
// runs; the engine thread owns it and attention worker threads read it. The backend's
// mutable per-sequence state lives beside it (BackendSequenceState, owned by the sequence).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "adapters/adapter.h"
#include "adapters/model_shape.h"
#include "attention/attention_backend.h"
#include "engine/attention_choice.h"
#include "engine/status.h"
#include "kv_cache/streaming_rule.h"

namespace hotswap {

// How the backend computes the pattern: its fast kernel, or the reference kernel that
// materialises the scores (tests, and any case the fast kernel cannot run).
enum class AttentionKernel { kFast, kReference };

struct SequenceAttention {
  const AttentionBackend* backend = nullptr;      // set by resolve_attention()
  std::shared_ptr<const BackendConfig> config;    // the backend's resolved parameters
  // The adapter the request pinned (any type), kept alive while the sequence runs.
  std::shared_ptr<const Adapter> adapter;
  // Set when every layer and head reads only this window, so KV pages outside it can be
  // released (KvCacheManager::release_invisible). Unset: keep all KV.
  std::optional<StreamingRule> release_rule;
  // With release_rule, per-KV-head release: [layer * num_kv_heads + kv_head] != 0 for the
  // lanes a dense head reads, which keep every position; the others release what release_rule
  // says (KvCacheManager::release_invisible). Empty: every lane releases (whole pages).
  std::vector<uint8_t> kept_lanes;
  // Prefix-cache namespace: implementation, its parameters and the adapter version. KV
  // computed under one namespace is never shared with another (specs/attention.md); empty
  // means the backend's KV is never shared (its per-sequence state would be missing).
  std::string cache_namespace = "eager";
  // False when only the prompt's blocks may be shared: KV of generated positions was computed
  // differently from the same tokens given as a prompt (masked with dense prefill).
  bool share_generated_kv = true;
  AttentionKernel kernel = AttentionKernel::kFast;

  const char* name() const { return backend != nullptr ? backend->name() : "eager"; }
};

// The request's choice + its adapter (may be null) -> the sequence's attention, applying
// specs/api.md: `auto` picks the backend registered for the adapter's type (none -> eager);
// an explicit choice that cannot run is an InvalidArgument that says why, never a
// substitute. The adapter must have been validated against `shape`.
Result<SequenceAttention> resolve_attention(const AttentionChoice& choice, std::shared_ptr<const Adapter> adapter,
                                            const ModelShape& shape);

// Name of the kernel the sequence's backend runs (nullptr = eager) on this model, for the
// response's usage and metrics, e.g. "paged_flash_avx512" or "reference".
const char* attention_kernel_name(const SequenceAttention* seq, const ModelShape& shape);

// "adapter 'x' is a mixed adapter": for backends' messages about the wrong adapter type.
std::string adapter_label(const Adapter& a);

}  // namespace hotswap
