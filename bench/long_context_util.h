// What the long-context masked benchmarks share (long_context_masked_bench.cc: one layer's
// decode attention; masked_whole_step_bench.cc: Model::forward of one token): the three
// summarising masker configurations of issue 13's benchmark, a random hashattention adapter of
// the reference's shape, fast standard-normal fills and clocks.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "adapters/adapter.h"
#include "adapters/hashattention_adapter.h"
#include "kv_cache/kv_layout.h"

namespace hotswap::bench {

// (a) sink 128 + local 128 + hashattention top-k 5%; (b) sink 128 + local 128 + MagicPig L 8 K 8
// (projections from its default seed); (c) Quest top-k, a 2048-token budget, 16-token pages.
inline constexpr const char* kHatJson =
    R"({"impl":"masked","maskers":[{"type":"sink","sink_size":128},{"type":"local","window_size":128},)"
    R"({"type":"hashattention_top_k","heavy_size":0.05}]})";
inline constexpr const char* kPigJson =
    R"({"impl":"masked","maskers":[{"type":"sink","sink_size":128},{"type":"local","window_size":128},)"
    R"({"type":"magic_pig","lsh_l":8,"lsh_k":8}]})";
inline constexpr const char* kQuestJson =
    R"({"impl":"masked","maskers":[{"type":"quest_top_k","heavy_size":2048,"page_size":16}]})";

// --kv_dtype=f32|bf16|q8 (engine.kv_cache_dtype's names): false, with a message, for another name.
inline bool parse_kv_dtype(const std::string& name, KvDtype* out) {
  for (KvDtype t : {KvDtype::kF32, KvDtype::kBf16, KvDtype::kQ8}) {
    if (name == kv_dtype_name(t)) {
      *out = t;
      return true;
    }
  }
  std::fprintf(stderr, "--kv_dtype must be f32, bf16 or q8 (got %s)\n", name.c_str());
  return false;
}

inline double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline double load_average() {
  double one = -1;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &one) != 1) one = -1;
    std::fclose(f);
  }
  return one;
}

// Standard normal floats (Box-Muller over xorshift64), fast enough for 10^8 of them.
inline void fill_normal(float* x, size_t n, uint64_t seed, float sigma = 1.0f) {
  uint64_t s = 0x9e3779b97f4a7c15ull * (seed + 1) | 1;
  for (size_t i = 0; i < n; i += 2) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    const float u1 = (static_cast<float>(s >> 40) + 0.5f) * 0x1p-24f;
    const float u2 = (static_cast<float>(s & 0xffffff) + 0.5f) * 0x1p-24f;
    const float r = sigma * std::sqrt(-2.0f * std::log(u1));
    x[i] = r * std::cos(6.28318531f * u2);
    if (i + 1 < n) x[i + 1] = r * std::sin(6.28318531f * u2);
  }
}

// A hashattention adapter of the reference's shape for `num_layers` layers of H 32, d 64:
// query and key MLPs 64 -> 128 -> 128 -> 32 bits per query head, silu, weights N(0, 1/fan_in),
// biases N(0, 0.01^2).
inline std::shared_ptr<const Adapter> hat_adapter(int num_layers) {
  auto a = std::make_shared<HashAttentionAdapter>();
  a->num_layers = num_layers;
  a->num_heads = 32;
  a->head_dim = 64;
  a->bits = 32;
  a->activation = HashActivation::kSilu;
  const int widths[] = {64, 128, 128, 32};
  uint64_t seed = 5000;
  auto mlp = [&] {
    std::vector<HashLinear> layers;
    for (int i = 0; i < 3; ++i) {
      HashLinear l;
      l.d_in = widths[i];
      l.d_out = widths[i + 1];
      l.weight.resize(static_cast<size_t>(32) * l.d_in * l.d_out);
      l.bias.resize(static_cast<size_t>(32) * l.d_out);
      fill_normal(l.weight.data(), l.weight.size(), seed++, 1.0f / std::sqrt(static_cast<float>(l.d_in)));
      fill_normal(l.bias.data(), l.bias.size(), seed++, 0.01f);
      layers.push_back(std::move(l));
    }
    return layers;
  };
  a->layers.resize(static_cast<size_t>(num_layers));
  for (auto& l : a->layers) l.query = mlp(), l.key = mlp();
  return Adapter::make_hashattention("bench-hat", "bench", 0, a);
}

}  // namespace hotswap::bench
