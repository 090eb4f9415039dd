// Where the attention backends are registered (backend_registry.cc is the one place that
// names them all).
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "adapters/adapter.h"
#include "attention/attention_backend.h"

namespace hotswap {

std::span<const AttentionBackend* const> attention_backends();
const AttentionBackend* find_attention_backend(std::string_view name);
// The backend `auto` picks for an adapter of this type (nullopt: no adapter); null if none.
const AttentionBackend* auto_attention_backend(std::optional<AdapterType> type);
// "auto, eager, streaming, ...": for messages.
std::string attention_choice_names();
// The backend of a call or chunk without sequence attention.
const AttentionBackend& default_attention_backend();

}  // namespace hotswap
