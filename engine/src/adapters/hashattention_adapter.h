// The parameters of a `hashattention` adapter (specs/maskers.md Part 1 "`hashattention`
// adapters", Part 2 §4.6): per layer, two per-query-head MLPs (one for queries, one for keys)
// whose sign bits are the HashAttention signatures the `hashattention_top_k` masker scores.
// Every tensor is float32 here, whatever the document stored (F32/BF16/F16).
//
// Built by parse_hashattention_adapter() (adapters/hashattention_adapter_codec.h); immutable
// afterwards and shared by every sequence that uses it, from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace hotswap {

enum class HashActivation : uint8_t { kRelu, kSilu, kGelu, kTanh };

const char* hash_activation_name(HashActivation a);  // "relu" | "silu" | "gelu" | "tanh"

// torch's functions in float32: relu, silu x*sigmoid(x), gelu the exact erf form
// 0.5*x*(1+erf(x/sqrt(2))) (torch's default), tanh.
float apply_hash_activation(HashActivation a, float x);
// The same, in place over x[0, n): one dispatch for a whole layer's outputs.
void apply_hash_activation(HashActivation a, float* x, size_t n);

// One linear layer of a hashing MLP, per query head: y[h] = x[h] · weight[h] + bias[h].
struct HashLinear {
  int d_in = 0;
  int d_out = 0;
  std::vector<float> weight;  // [H, d_in, d_out] (already (in, out), as the reference keeps it)
  std::vector<float> bias;    // [H, d_out]
};

struct HashAttentionAdapter {
  int num_layers = 0;  // the base model's L
  int num_heads = 0;   // the base model's query heads H
  int head_dim = 0;    // d, the first layer's d_in
  int bits = 0;        // the last layer's d_out, 1..64
  HashActivation activation = HashActivation::kSilu;

  struct Layer {
    std::vector<HashLinear> query;  // layers 0..n-1; activation after each but the last
    std::vector<HashLinear> key;
  };
  std::vector<Layer> layers;

  size_t num_parameters() const {
    size_t n = 0;
    for (const Layer& l : layers)
      for (const auto* side : {&l.query, &l.key})
        for (const HashLinear& x : *side) n += x.weight.size() + x.bias.size();
    return n;
  }
};

// One line for GET /v1/adapters, e.g. "4 layers, 8 heads, 32 bits, query MLP 16->128->32,
// key MLP 16->32, activation silu" (the widths of layer 0, noted when other layers differ).
std::string hashattention_adapter_description(const HashAttentionAdapter& a);
// {"layers":4,"heads":8,"bits":32,"activation":"silu","query_widths":[16,128,32],
//  "key_widths":[16,32]} (+ "widths_vary_by_layer":true when layers differ from layer 0).
std::string hashattention_parameters_json(const HashAttentionAdapter& a);

}  // namespace hotswap
