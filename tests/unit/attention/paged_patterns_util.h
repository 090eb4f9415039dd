// Test helpers: the paged attention patterns (streaming, mixed with random gates) as a request
// asks for them, resolved as the server resolves them. Shared by the float32 and bf16 kernel tests.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "adapters/mixed_adapter_codec.h"
#include "attention/sequence_attention.h"
#include "engine/attention_choice.h"

namespace hotswap::testing {

// The request's attention object, parsed as the server parses it.
inline AttentionChoice choice_of(const std::string& json) {
  AttentionChoice choice;
  std::string error;
  EXPECT_TRUE(parse_attention_choice(json, &choice, &error)) << json << ": " << error;
  return choice;
}

inline SequenceAttention streaming(int sink, int recent, int block, const ModelShape& shape) {
  const AttentionChoice choice =
      choice_of("{\"impl\":\"streaming\",\"sink_window_size\":" + std::to_string(sink) +
                ",\"recent_window_size\":" + std::to_string(recent) + ",\"block_size\":" + std::to_string(block) + "}");
  Result<SequenceAttention> r = resolve_attention(choice, nullptr, shape);
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  return r.value();
}

// A mixed adapter with random gates that include exact 0s and 1s; per_query_head gives H
// distinct gates per layer instead of Hkv.
inline std::shared_ptr<const Adapter> random_mixed_adapter(const ModelShape& shape, bool per_query_head, int sink, int recent,
                                                    int block, std::mt19937& rng) {
  std::uniform_real_distribution<float> uni(0.0f, 1.0f);
  std::string doc = "{\"sink_window_size\":" + std::to_string(sink) + ",\"recent_window_size\":" +
                    std::to_string(recent) + ",\"block_size\":" + std::to_string(block) + ",\"adapter_weight_dict\":{";
  const int n = per_query_head ? shape.num_heads : shape.num_kv_heads;
  for (int l = 0; l < shape.num_layers; ++l) {
    doc += (l ? "," : "") + std::string("\"model.layers.") + std::to_string(l) + ".self_attn.adapter.weight\":[";
    for (int i = 0; i < n; ++i) {
      const float u = uni(rng);
      const float g = u < 0.25f ? 0.0f : u < 0.5f ? 1.0f : uni(rng);
      doc += (i ? "," : "") + std::to_string(g);
    }
    doc += "]";
  }
  doc += "}}";
  Result<std::shared_ptr<const Adapter>> a = parse_mixed_adapter(doc, shape, "random");
  EXPECT_TRUE(a.is_ok()) << a.status().message();
  return a.value();
}

inline SequenceAttention mixed(std::shared_ptr<const Adapter> adapter, const ModelShape& shape,
                        std::optional<float> threshold = std::nullopt) {
  nlohmann::json j = {{"impl", "mixed"}};
  if (threshold) j["gate_threshold"] = *threshold;
  const AttentionChoice choice = choice_of(j.dump());
  Result<SequenceAttention> r = resolve_attention(choice, std::move(adapter), shape);
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  return r.value();
}

}  // namespace hotswap::testing
