#include "adapters/hashattention_adapter.h"

#include <cmath>
#include <sstream>

#include <nlohmann/json.hpp>

namespace hotswap {

const char* hash_activation_name(HashActivation a) {
  switch (a) {
    case HashActivation::kRelu: return "relu";
    case HashActivation::kSilu: return "silu";
    case HashActivation::kGelu: return "gelu";
    case HashActivation::kTanh: return "tanh";
  }
  return "unknown";
}

float apply_hash_activation(HashActivation a, float x) {
  switch (a) {
    case HashActivation::kRelu: return x > 0.0f ? x : 0.0f;
    // x * sigmoid(x) as torch computes it in float32: x / (1 + exp(-x)).
    case HashActivation::kSilu: return x / (1.0f + std::exp(-x));
    // torch's default (approximate="none") gelu: the exact erf form.
    case HashActivation::kGelu: return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752440f));
    case HashActivation::kTanh: return std::tanh(x);
  }
  return x;
}

namespace {

// The widths of one side's MLP: d_in of the first layer, then each layer's d_out.
std::vector<int> widths(const std::vector<HashLinear>& mlp) {
  std::vector<int> w;
  if (!mlp.empty()) w.push_back(mlp.front().d_in);
  for (const HashLinear& x : mlp) w.push_back(x.d_out);
  return w;
}

std::string arrow_list(const std::vector<int>& w) {
  std::string s;
  for (size_t i = 0; i < w.size(); ++i) s += (i ? "->" : "") + std::to_string(w[i]);
  return s;
}

// Whether every layer has layer 0's widths on both sides (the description shows layer 0's).
bool uniform_widths(const HashAttentionAdapter& a) {
  for (const auto& l : a.layers)
    if (widths(l.query) != widths(a.layers.front().query) || widths(l.key) != widths(a.layers.front().key)) return false;
  return true;
}

}  // namespace

std::string hashattention_adapter_description(const HashAttentionAdapter& a) {
  std::ostringstream s;
  s << a.num_layers << " layers, " << a.num_heads << " heads, " << a.bits << " bits";
  if (!a.layers.empty()) {
    s << ", query MLP " << arrow_list(widths(a.layers.front().query)) << ", key MLP "
      << arrow_list(widths(a.layers.front().key));
    if (!uniform_widths(a)) s << " (layer 0; other layers differ)";
  }
  s << ", activation " << hash_activation_name(a.activation);
  return s.str();
}

std::string hashattention_parameters_json(const HashAttentionAdapter& a) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  j["layers"] = a.num_layers;
  j["heads"] = a.num_heads;
  j["bits"] = a.bits;
  j["activation"] = hash_activation_name(a.activation);
  if (!a.layers.empty()) {
    j["query_widths"] = widths(a.layers.front().query);
    j["key_widths"] = widths(a.layers.front().key);
    if (!uniform_widths(a)) j["widths_vary_by_layer"] = true;
  }
  return j.dump();
}

}  // namespace hotswap
