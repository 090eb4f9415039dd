// Shared by the paged kernel's KV element type suites (paged_attention_{bf16,q8}_test.cc):
// resolving an attention choice, the randomly drawn shapes they sweep, and the layer call
// they run over a fixture.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "attention/layer_attention.h"
#include "attention/paged/paged_pattern.h"
#include "attention/sequence_attention.h"
#include "engine/attention_choice.h"
#include "kernels/isa.h"

#include "attention_test_util.h"
#include "paged_patterns_util.h"

namespace hotswap::testing {

// One drawn case: heads, head_dim (from `dims`, by trial), block size, context, query tokens,
// and a streaming and a mixed configuration for the shape with the same windows.
struct PagedCase {
  int h = 0, hkv = 0, d = 0, bs = 0, ctx = 0, tokens = 0;
  SequenceAttention streaming;
  // Random gates with exact 0s and 1s, per query head: the heads of a group need different
  // branches, so a segment scores one head (its row converted in registers) or several (the
  // row converted once for all).
  SequenceAttention mixed;
  std::string what;
  // The patterns a case sweeps (null: eager), with their names.
  std::vector<std::pair<const SequenceAttention*, const char*>> patterns() const {
    return {{nullptr, " eager"}, {&streaming, " streaming"}, {&mixed, " mixed"}};
  }
};

inline PagedCase draw_paged_case(std::mt19937& rng, int trial, const std::vector<int>& dims, kernels::Isa isa) {
  static const std::vector<std::pair<int, int>> heads = {{1, 1}, {4, 2}, {8, 2}, {12, 3}, {16, 1}};
  static const std::vector<int> block_sizes = {1, 5, 16, 32};
  PagedCase c;
  std::tie(c.h, c.hkv) = heads[rng() % heads.size()];
  c.d = dims[static_cast<size_t>(trial) % dims.size()];
  c.bs = block_sizes[rng() % block_sizes.size()];
  c.ctx = trial % 8 == 0 ? 3000 + static_cast<int>(rng() % 1000) : 1 + static_cast<int>(rng() % 600);
  c.tokens = trial % 3 == 0 ? 1 : 1 + static_cast<int>(rng() % std::min(c.ctx, c.ctx > 1000 ? 3 : 24));
  const ModelShape shape{2, c.h, c.hkv, c.d, c.h * c.d, ""};
  const int sink = static_cast<int>(rng() % 30), recent = 1 + static_cast<int>(rng() % 90);
  const int window_block = std::vector<int>{1, 4, 16}[rng() % 3];
  c.streaming = streaming(sink, recent, window_block, shape);
  c.mixed = mixed(random_mixed_adapter(shape, /*per_query_head=*/true, sink, recent, window_block, rng), shape);
  c.what = "H=" + std::to_string(c.h) + " Hkv=" + std::to_string(c.hkv) + " d=" + std::to_string(c.d) + " B=" +
           std::to_string(c.bs) + " ctx=" + std::to_string(c.ctx) + " tokens=" + std::to_string(c.tokens) + " isa " +
           kernels::isa_name(isa);
  return c;
}

// The last `num_tokens` positions of `f` as queries `q` (random N(0,1), filled here) of
// `num_heads` heads; the caller sets kv and out.
inline LayerAttentionCall fixture_call(const PagedFixture& f, int num_heads, int num_tokens, const SequenceAttention* seq,
                                       std::vector<float>& q, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  q.resize(static_cast<size_t>(num_tokens) * num_heads * f.head_dim);
  for (float& x : q) x = normal(rng);
  LayerAttentionCall call;
  call.q = q.data();
  call.num_tokens = num_tokens;
  call.first_position = f.context - num_tokens;
  call.num_heads = num_heads;
  call.num_kv_heads = f.num_kv_heads;
  call.head_dim = f.head_dim;
  call.scale = 1.0f / std::sqrt(static_cast<float>(f.head_dim));
  call.seq = seq;
  return call;
}

// A lone decode token over long contexts, split across threads (flash-decoding), on every
// ISA: check(fixture, num_heads, num_tokens, seq, what) for 4 query heads of one KV head.
template <class F>
void for_split_contexts(std::mt19937& rng, F&& check) {
  IsaRestorer restore;
#ifdef _OPENMP
  const int saved = omp_get_max_threads();
  omp_set_num_threads(16);
#endif
  for (kernels::Isa isa : supported_isas()) {
    kernels::set_active_isa(isa);
    for (int ctx : {1025, 5000}) {
      PagedFixture f(1, 64, 16, ctx, rng);
      check(f, 4, 1, nullptr, "ctx " + std::to_string(ctx) + " isa " + kernels::isa_name(isa));
    }
  }
#ifdef _OPENMP
  omp_set_num_threads(saved);
#endif
}

// A streaming decode step over a cache whose invisible pages were released (their rows NaN):
// check(fixture, num_heads, num_tokens, seq, what).
template <class F>
void with_released_pages(std::mt19937& rng, F&& check) {
  const int ctx = 2000, bs = 16;
  const ModelShape shape{1, 8, 2, 32, 256, ""};
  const SequenceAttention s =
      streaming(20, 100, 16, shape);
  PagedFixture f(2, 32, bs, ctx, rng);
  const StreamingRule& rule = static_cast<const PagedPattern&>(*s.config).rule;
  f.release_pages((rule.sink_end + bs - 1) / bs, rule.local_start(ctx - 1) / bs);
  check(f, 8, 1, &s, "released pages");
}

}  // namespace hotswap::testing
