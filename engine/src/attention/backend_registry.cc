#include "attention/backend_registry.h"

#include <array>

#include "attention/eager/eager_backend.h"
#include "attention/masked/masked_backend.h"
#include "attention/mixed/mixed_backend.h"
#include "attention/nsa/nsa_backend.h"
#include "attention/streaming/streaming_backend.h"

namespace hotswap {

std::span<const AttentionBackend* const> attention_backends() {
  static const std::array<const AttentionBackend*, 5> kBackends = {
      &eager_backend(), &streaming_backend(), &mixed_backend(), &nsa_backend(), &masked_backend(),
  };
  return kBackends;
}

const AttentionBackend* find_attention_backend(std::string_view name) {
  for (const AttentionBackend* b : attention_backends())
    if (name == b->name()) return b;
  return nullptr;
}

const AttentionBackend* auto_attention_backend(std::optional<AdapterType> type) {
  for (const AttentionBackend* b : attention_backends())
    if (b->chosen_by_auto_for(type)) return b;
  return nullptr;
}

std::string attention_choice_names() {
  std::string names = "auto";
  for (const AttentionBackend* b : attention_backends()) names += std::string(", ") + b->name();
  return names;
}

const AttentionBackend& default_attention_backend() { return eager_backend(); }

}  // namespace hotswap
