// Test helpers for the NSA suite: random adapters built directly as NsaAdapter, their
// tensors under spec names, and encoders for both adapter encodings (specs/adapters.md) so
// the codec can be fed valid documents and precise corruptions of them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/model_shape.h"
#include "adapters/nsa_adapter.h"
#include "core/dtype.h"

namespace hotswap::testing {

// Random weights for `config` on `shape` (mlp_hidden_size must already be resolved when a
// side is mlp). Deterministic in `seed`. `with_biases` fills the optional MLP biases.
std::shared_ptr<NsaAdapter> random_nsa_adapter(const ModelShape& shape, const NsaConfig& config, uint64_t seed,
                                               bool with_biases = true);

struct NamedTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data;
  DType dtype = DType::kF32;  // safetensors encoding only
};

// Every tensor of `a` under 'model.layers.{i}.self_attn.nsa.' (MLP biases included).
std::vector<NamedTensor> nsa_tensors(const NsaAdapter& a);

// The configuration keys of `c` as a JSON object, with "adapter_type": "nsa".
nlohmann::ordered_json nsa_config_object(const NsaConfig& c);

// {config..., "adapter_weight_dict": {name: {"shape", "data"}}}.
nlohmann::ordered_json nsa_json_document(const nlohmann::ordered_json& config, const std::vector<NamedTensor>& tensors);

// A safetensors image; `config` (if not null) is stored as __metadata__.adapter_config.
// Values are stored in each tensor's dtype (rounded to nearest even for F16/BF16).
std::string nsa_safetensors(const nlohmann::ordered_json* config, const std::vector<NamedTensor>& tensors);

// A safetensors image from an explicit header object and data bytes (for malformed files).
std::string raw_safetensors(const std::string& header_json, const std::string& data);

}  // namespace hotswap::testing
