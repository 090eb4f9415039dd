// An adapter document -> Adapter: the type from the encoding, the JSON `adapter_type` or the
// safetensors __metadata__ "type", then that type's codec (adapters/adapter_document.h).
#include "adapters/adapter_document.h"

#include <string>

#include "adapters/adapter_tensors.h"
#include "adapters/adapter_type_probe.h"
#include "adapters/hashattention_adapter_codec.h"
#include "adapters/lsh_adapter_codec.h"
#include "adapters/mixed_adapter_codec.h"
#include "adapters/nsa_adapter_codec.h"
#include "adapters/sha256.h"

namespace hotswap {
namespace {


std::string quoted_prefix(std::string_view s) {
  constexpr size_t kMax = 60;
  std::string out = "'";
  for (char c : s.substr(0, kMax)) out += (static_cast<unsigned char>(c) < 0x20 ? '?' : c);
  if (s.size() > kMax) out += "...";
  return out + "'";
}

// A validated nsa document -> Adapter. The nsa module describes its own parameters; the
// model_name note matches what mixed adapters say.
Result<std::shared_ptr<const Adapter>> nsa_to_adapter(Result<std::shared_ptr<const NsaAdapter>> parsed,
                                                      std::string_view body, const ModelShape& shape,
                                                      const std::string& name) {
  if (!parsed) return parsed.status();
  std::shared_ptr<const NsaAdapter> nsa = std::move(parsed).value();
  std::string description = "nsa adapter";
  if (!name.empty()) description += " '" + name + "'";
  description += ": " + nsa_adapter_description(*nsa);
  if (!nsa->model_name.empty() && !shape.model_name.empty() && nsa->model_name != shape.model_name) {
    description += " (differs from the base model '" + shape.model_name + "')";
  }
  const int num_layers = nsa->num_layers;
  std::string parameters = nsa_parameters_json(*nsa);
  return Adapter::make_nsa(name, sha256_hex(body), body.size(), std::move(nsa), num_layers, std::move(description),
                           std::move(parameters));
}

// The note that ends "unknown type" messages: where the other two types live.
constexpr const char* kSafetensorsTypesNote =
    "(JSON documents; 'hashattention' and 'lsh' adapters are safetensors files with __metadata__ \"type\")";

// A safetensors body: __metadata__ "type" picks hashattention or lsh (probed without parsing
// the tensors); without one it is an nsa adapter, as before those types existed.
Result<std::shared_ptr<const Adapter>> parse_safetensors_document(std::string_view body, const ModelShape& shape,
                                                                  const std::string& name) {
  const ProbedString type = probe_safetensors_metadata_type(body);
  if (type.is("hashattention")) {
    auto parsed = parse_hashattention_adapter(body, shape);
    if (!parsed) return parsed.status();
    return Adapter::make_hashattention(name, sha256_hex(body), body.size(), std::move(parsed).value());
  }
  if (type.is("lsh")) {
    auto parsed = parse_lsh_adapter(body, shape);
    if (!parsed) return parsed.status();
    return Adapter::make_lsh(name, sha256_hex(body), body.size(), std::move(parsed).value());
  }
  if (type.found == ProbedString::Found::kString && type.value != "nsa") {
    // An nsa adapter keeps its configuration under adapter_config and may carry unrelated
    // metadata; only a document without it is an unknown type.
    Result<SafetensorsHeader> header = read_adapter_safetensors(body, "adapter (safetensors)");
    if (header && !header->metadata.contains("adapter_config")) {
      return Status::invalid_argument("__metadata__ key 'type': unknown adapter type " + quoted_prefix(type.value) +
                                      "; expected 'hashattention' or 'lsh' (an nsa adapter has its configuration "
                                      "under __metadata__ key 'adapter_config' instead)");
    }
  }
  return nsa_to_adapter(parse_nsa_adapter_safetensors(body, shape), body, shape, name);
}

}  // namespace

Result<std::shared_ptr<const Adapter>> parse_adapter_document(std::string_view body, AdapterEncoding encoding,
                                                              const ModelShape& shape, const std::string& name) {
  if (encoding == AdapterEncoding::kSafetensors) {
    if (!body.empty() && body.front() == '{') {
      return Status::invalid_argument(
          "the body starts with '{' like a JSON document but was sent as safetensors; send adapter_weight.json "
          "documents as application/json");
    }
    return parse_safetensors_document(body, shape, name);
  }
  if (looks_like_safetensors(body)) {
    return Status::invalid_argument(
        "the body is a safetensors file but was sent as JSON; send safetensors adapters as application/octet-stream");
  }
  const ProbedString probe = probe_json_string(body, {"adapter_type"});
  if (probe.found == ProbedString::Found::kNotString) {
    return Status::invalid_argument("key 'adapter_type': expected the string 'mixed' or 'nsa', got " + probe.value);
  }
  if (probe.is("nsa")) return nsa_to_adapter(parse_nsa_adapter_json(body, shape), body, shape, name);
  if (probe.is("hashattention") || probe.is("lsh")) {
    return Status::invalid_argument("key 'adapter_type': '" + probe.value + "' adapters are safetensors files (" +
                                    "__metadata__ {\"type\": \"" + probe.value +
                                    "\", ...}), not JSON; send them as application/octet-stream");
  }
  if (probe.found == ProbedString::Found::kString && probe.value != "mixed") {
    return Status::invalid_argument("key 'adapter_type': unknown adapter type " + quoted_prefix(probe.value) +
                                    "; expected 'mixed' or 'nsa' " + kSafetensorsTypesNote);
  }
  return parse_mixed_adapter(body, shape, name);
}

size_t adapter_resident_bytes(const Adapter& adapter) {
  size_t n = sizeof(Adapter);
  if (const auto& m = adapter.mixed()) n += sizeof(MixedAdapter) + m->gates.size() * sizeof(float);
  if (const auto& a = adapter.nsa()) n += sizeof(NsaAdapter) + a->num_parameters() * sizeof(float);
  if (const auto& a = adapter.hashattention()) {
    n += sizeof(HashAttentionAdapter) + a->num_parameters() * sizeof(float);
    for (const auto& l : a->layers) n += (l.query.size() + l.key.size()) * sizeof(HashLinear);
  }
  if (const auto& a = adapter.lsh()) n += sizeof(LshAdapter) + a->num_parameters() * sizeof(float);
  return n;
}

}  // namespace hotswap
