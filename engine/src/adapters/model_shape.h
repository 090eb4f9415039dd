// The dimensions of the base model an adapter must fit. The model module fills it from
// config.json; adapters are validated against it when they are parsed.
#pragma once

#include <string>

namespace hotswap {

struct ModelShape {
  int num_layers = 0;    // L, num_hidden_layers
  int num_heads = 0;     // H, num_attention_heads
  int num_kv_heads = 0;  // Hkv, num_key_value_heads; divides H
  int head_dim = 0;      // d
  int hidden_size = 0;   // D
  // Optional: the base model's name. When set, an adapter whose model_name differs gets a
  // note in its description (spec: informational, never a rejection).
  std::string model_name{};
};

}  // namespace hotswap
