#include "adapters/hashattention_adapter.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
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

namespace {

// e^x in float32, within 1 ulp for x in [-86, 88.7] and +inf above, from fused multiply-adds
// only (Cody-Waite reduction by ln 2, Cephes' degree-6 polynomial), so that a loop of it
// vectorises and one call gives the same bits as the loop. Below -86 it gives e^-86, which
// silu's 1 + e^x cannot tell from 0. glibc's expf cannot be vectorised, and torch's own silu
// does not use it either (its vector exp has its own last bits): a prompt's keys take 256
// exponentials a key and query head, which were the larger part of their signatures' time.
[[gnu::always_inline]] inline float exp_for_silu(float x) {
  x = std::min(std::max(x, -86.0f), 89.0f);                                   // NaN stays NaN
  const float n = std::rint((x == x ? x : 0.0f) * 1.44269504088896341f);  // and no NaN to int
  float r = std::fma(n, -0.693359375f, x);  // x - n ln 2, ln 2 in two parts
  r = std::fma(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  const float e = std::fma(p, r * r, r) + 1.0f;
  // 2^n as 2^(n-1) * 2: n - 1 lies in [-125, 127], a normal float's exponent. The last
  // product as an fma with 0 (the same value): a caller's 1 + e^x then cannot be contracted
  // into it in one inlined copy and not in another.
  const float half_scale = std::bit_cast<float>((static_cast<int32_t>(n) + 126) << 23);
  return std::fma(e * half_scale, 2.0f, 0.0f);
}

template <HashActivation A>
[[gnu::always_inline]] inline float activate(float x) {
  if constexpr (A == HashActivation::kRelu) return x > 0.0f ? x : 0.0f;
  // x * sigmoid(x) as torch computes it in float32: x / (1 + exp(-x)).
  else if constexpr (A == HashActivation::kSilu) return x / (1.0f + exp_for_silu(-x));
  // torch's default (approximate="none") gelu: the exact erf form.
  else if constexpr (A == HashActivation::kGelu) return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752440f));
  else return std::tanh(x);
}

template <HashActivation A>
void activate_all(float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] = activate<A>(x[i]);
}

}  // namespace

float apply_hash_activation(HashActivation a, float x) {
  switch (a) {
    case HashActivation::kRelu: return activate<HashActivation::kRelu>(x);
    case HashActivation::kSilu: return activate<HashActivation::kSilu>(x);
    case HashActivation::kGelu: return activate<HashActivation::kGelu>(x);
    case HashActivation::kTanh: return activate<HashActivation::kTanh>(x);
  }
  return x;
}

void apply_hash_activation(HashActivation a, float* x, size_t n) {
  switch (a) {
    case HashActivation::kRelu: return activate_all<HashActivation::kRelu>(x, n);
    case HashActivation::kSilu: return activate_all<HashActivation::kSilu>(x, n);
    case HashActivation::kGelu: return activate_all<HashActivation::kGelu>(x, n);
    case HashActivation::kTanh: return activate_all<HashActivation::kTanh>(x, n);
  }
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
