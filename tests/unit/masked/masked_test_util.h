// Hand-built paged KV caches for the masked suite: logical rows [position][kv head][d] stored
// in the paged layout [num_blocks, Hkv, block_size, d] behind an identity or shuffled block
// table, so that every test can run over several block sizes and table shapes.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "adapters/hashattention_adapter.h"
#include "attention/masked/masker_config.h"
#include "kv_cache/paged_kv_view.h"

namespace hotswap::masked::testing {

class TestCache {
 public:
  // `shuffled`: the logical blocks live in a permuted order among one extra, unused block.
  TestCache(int positions, int num_kv_heads, int head_dim, int block_size, bool shuffled = false,
            uint32_t shuffle_seed = 7)
      : positions_(positions), hkv_(num_kv_heads), d_(head_dim), bs_(block_size) {
    const int logical = (positions + block_size - 1) / block_size;
    const int physical = logical + (shuffled ? 1 : 0);
    std::vector<int32_t> perm(static_cast<size_t>(physical));
    std::iota(perm.begin(), perm.end(), 0);
    if (shuffled) std::shuffle(perm.begin(), perm.end(), std::mt19937(shuffle_seed));
    blocks_.assign(perm.begin(), perm.begin() + logical);
    const size_t n = static_cast<size_t>(physical) * hkv_ * bs_ * d_;
    k_.assign(n, 1e30f);  // poison: a row read through a wrong offset shows
    v_.assign(n, 1e30f);
    for (int p = 0; p < positions; ++p)
      for (int g = 0; g < hkv_; ++g) {
        std::fill_n(key_mut(p, g), d_, 0.0f);
        std::fill_n(value_mut(p, g), d_, 0.0f);
      }
  }

  PagedKvView view() const {
    PagedKvView v;
    v.k = k_.data();
    v.v = v_.data();
    v.blocks = blocks_.data();
    v.num_logical_blocks = static_cast<int>(blocks_.size());
    v.block_size = bs_;
    v.num_kv_heads = hkv_;
    v.head_dim = d_;
    return v;
  }

  float* key_mut(int pos, int g) { return k_.data() + view().offset(pos, g); }
  float* value_mut(int pos, int g) { return v_.data() + view().offset(pos, g); }

  // Standard-normal keys and values (deterministic in seed).
  void fill_random(uint32_t seed, float key_scale = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> n(0.0f, 1.0f);
    for (int p = 0; p < positions_; ++p)
      for (int g = 0; g < hkv_; ++g)
        for (int c = 0; c < d_; ++c) {
          key_mut(p, g)[c] = key_scale * n(rng);
          value_mut(p, g)[c] = n(rng);
        }
  }

  int positions() const { return positions_; }
  int num_kv_heads() const { return hkv_; }
  int head_dim() const { return d_; }

 private:
  int positions_, hkv_, d_, bs_;
  std::vector<int32_t> blocks_;
  std::vector<float> k_, v_;
};

inline std::vector<float> random_query(int num_heads, int d, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> q(static_cast<size_t>(num_heads) * d);
  for (float& x : q) x = scale * n(rng);
  return q;
}

// One random layer of a hashattention MLP for `heads` heads: weights and biases N(0, sd).
inline HashLinear random_hash_linear(int heads, int d_in, int d_out, float sd, std::mt19937& rng) {
  std::normal_distribution<float> n(0.0f, sd);
  HashLinear l;
  l.d_in = d_in;
  l.d_out = d_out;
  l.weight.resize(static_cast<size_t>(heads) * d_in * d_out);
  l.bias.resize(static_cast<size_t>(heads) * d_out);
  for (float& x : l.weight) x = n(rng);
  for (float& x : l.bias) x = n(rng);
  return l;
}

// parse_masked_config of a JSON text that must be valid.
inline MaskedConfig config_of(const std::string& json_text) {
  Result<MaskedConfig> r = parse_masked_config(nlohmann::json::parse(json_text));
  EXPECT_TRUE(r.is_ok()) << json_text << ": " << r.status().message();
  return r.is_ok() ? r.value() : MaskedConfig{};
}

}  // namespace hotswap::masked::testing
