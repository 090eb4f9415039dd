#include "attention/sequence_attention.h"

#include <nlohmann/json.hpp>

#include "attention/attention_step.h"
#include "attention/backend_registry.h"

namespace hotswap {

Result<SequenceAttention> resolve_attention(const AttentionChoice& choice, std::shared_ptr<const Adapter> adapter,
                                            const ModelShape& shape) {
  nlohmann::json params;  // null when the request named the implementation only
  if (!choice.params.empty()) {
    params = nlohmann::json::parse(choice.params, nullptr, /*allow_exceptions=*/false);
    if (params.is_discarded()) return Status::invalid_argument("attention: not a valid JSON object");
  }
  const AttentionBackend* backend = nullptr;
  if (choice.impl == "auto") {
    const std::optional<AdapterType> type = adapter ? std::optional(adapter->type()) : std::nullopt;
    backend = auto_attention_backend(type);
    if (backend == nullptr) {
      return Status::invalid_argument(std::string("attention 'auto': no implementation serves ") +
                                      adapter_type_name(*type) + " adapters");
    }
  } else {
    backend = find_attention_backend(choice.impl);
    if (backend == nullptr) {
      return Status::invalid_argument("attention: unknown implementation '" + choice.impl.substr(0, 64) +
                                      "'; valid: " + attention_choice_names());
    }
  }
  if (Status s = backend->check_params(params); !s) return s;
  Result<SequenceAttention> resolved = backend->resolve(params, std::move(adapter), shape);
  if (!resolved) return resolved.status();
  SequenceAttention s = std::move(resolved.value());
  s.backend = backend;
  return s;
}

const char* attention_kernel_name(const SequenceAttention* seq, const ModelShape& shape) {
  if (seq == nullptr) return default_attention_backend().kernel_name(SequenceAttention{}, shape);
  return backend_of(seq).kernel_name(*seq, shape);
}

std::string adapter_label(const Adapter& a) {
  const std::string type = adapter_type_name(a.type());
  const bool vowel = !type.empty() && std::string_view("aeiou").find(type[0]) != std::string_view::npos;
  return (a.name().empty() ? std::string("the request's adapter") : "adapter '" + a.name() + "'") + " is " +
         (vowel ? "an " : "a ") + type + " adapter";
}

}  // namespace hotswap
