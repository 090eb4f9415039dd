#include "attention/paged_attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "adapters/mixed_adapter_codec.h"
#include "attention/layer_attention.h"
#include "attention/paged/paged_pattern.h"
#include "attention/paged_attention_kernel.h"
#include "attention/sequence_attention.h"
#include "kernels/isa.h"
#include "engine/attention_choice.h"
#include "kv_cache/kv_layout.h"

#include "attention_test_util.h"
#include "paged_patterns_util.h"

namespace hotswap {
namespace {

using namespace testing;  // attention_test_util.h

struct Case {
  int num_heads, num_kv_heads, head_dim, block_size, context, num_tokens;
};

std::string describe(const Case& c, const char* pattern) {
  return std::string(pattern) + " H=" + std::to_string(c.num_heads) + " Hkv=" + std::to_string(c.num_kv_heads) +
         " d=" + std::to_string(c.head_dim) + " B=" + std::to_string(c.block_size) + " ctx=" +
         std::to_string(c.context) + " tokens=" + std::to_string(c.num_tokens);
}

// Which entry point computes the "fast" side of compare().
enum class FastPath {
  kAttend,         // attend(): the fast kernel, or the reference for shapes it does not support
  kPagedKernelOnly,  // paged_attention() itself; the shape must be one it supports
};

// Runs the fast kernel and the reference on the same call; returns the relative error.
double compare(const Case& c, const SequenceAttention* seq, int layer, std::mt19937& rng, PagedFixture* kv_in = nullptr,
               FastPath path = FastPath::kAttend) {
  PagedFixture local = kv_in ? *kv_in : PagedFixture(c.num_kv_heads, c.head_dim, c.block_size, c.context, rng);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> q(static_cast<size_t>(c.num_tokens) * c.num_heads * c.head_dim);
  for (float& x : q) x = normal(rng);
  std::vector<float> out_fast(q.size(), kNaN), out_ref(q.size(), kNaN);
  LayerAttentionCall call;
  call.layer = layer;
  call.q = q.data();
  call.num_tokens = c.num_tokens;
  call.first_position = c.context - c.num_tokens;
  call.num_heads = c.num_heads;
  call.num_kv_heads = c.num_kv_heads;
  call.head_dim = c.head_dim;
  call.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  call.kv = local.view();
  call.seq = seq;
  call.out = out_fast.data();
  if (path == FastPath::kPagedKernelOnly) {
    // paged_attention() HS_CHECKs the shape too; this says which case was wrong.
    EXPECT_TRUE(paged_attention_supports(call)) << "H=" << c.num_heads << " Hkv=" << c.num_kv_heads;
    paged_attention(&call, 1);
  } else {
    attend(call);
  }
  call.out = out_ref.data();
  attention_reference(call);
  return relative_error(out_fast, out_ref, c.head_dim);
}

ModelShape shape_of(const Case& c, int layers) {
  ModelShape s;
  s.num_layers = layers;
  s.num_heads = c.num_heads;
  s.num_kv_heads = c.num_kv_heads;
  s.head_dim = c.head_dim;
  s.hidden_size = c.num_heads * c.head_dim;
  return s;
}

constexpr double kTolerance = 1e-5;

TEST(PagedAttention, EagerMatchesReferenceAtPageBoundariesAndLongContexts) {
  IsaRestorer restore;
  std::mt19937 rng(1);
  for (kernels::Isa isa : supported_isas()) {
    kernels::set_active_isa(isa);
    for (int bs : {1, 16, 7}) {
      for (int ctx : {1, 2, bs - 1, bs, bs + 1, 2 * bs, 2 * bs + 1, 127, 128, 129, 1000, 5003}) {
        if (ctx < 1) continue;
        const Case c{8, 2, 64, bs, ctx, 1};
        EXPECT_LT(compare(c, nullptr, 0, rng), kTolerance) << describe(c, "eager") << " isa " << kernels::isa_name(isa);
      }
    }
  }
}

TEST(PagedAttention, RandomShapesPatternsAndContextsMatchReference) {
  IsaRestorer restore;
  std::mt19937 rng(7);
  const std::vector<std::pair<int, int>> heads = {{1, 1}, {4, 4}, {4, 2}, {8, 2}, {12, 3}, {32, 8}, {16, 1}, {14, 2}};
  const std::vector<int> dims = {8, 16, 24, 40, 64, 80, 128};
  const std::vector<int> block_sizes = {1, 2, 5, 16, 32};
  for (kernels::Isa isa : supported_isas()) {
    kernels::set_active_isa(isa);
    for (int trial = 0; trial < 60; ++trial) {
      const auto [h, hkv] = heads[rng() % heads.size()];
      const int d = dims[rng() % dims.size()];
      const int bs = block_sizes[rng() % block_sizes.size()];
      const int ctx = trial % 10 == 0 ? 4000 + static_cast<int>(rng() % 1200) : 1 + static_cast<int>(rng() % 700);
      // Decode (1 token) or a prefill chunk; short chunks on long contexts keep the
      // double-precision reference affordable.
      const int max_chunk = ctx > 1000 ? 4 : 40;
      const int tokens = trial % 3 == 0 ? 1 : 1 + static_cast<int>(rng() % std::min(ctx, max_chunk));
      const Case c{h, hkv, d, bs, ctx, tokens};
      const ModelShape shape = shape_of(c, 3);
      const int sink = static_cast<int>(rng() % 40);
      const int recent = 1 + static_cast<int>(rng() % 100);
      const int wblock = std::vector<int>{1, 1, 4, 16, 64}[rng() % 5];
      const int layer = static_cast<int>(rng() % 3);
      const std::string isa_name = kernels::isa_name(isa);

      EXPECT_LT(compare(c, nullptr, layer, rng), kTolerance) << describe(c, "eager") << " " << isa_name;
      const SequenceAttention s = streaming(sink, recent, wblock, shape);
      EXPECT_LT(compare(c, &s, layer, rng), kTolerance)
          << describe(c, "streaming") << " S=" << sink << " R=" << recent << " Bw=" << wblock << " " << isa_name;
      const SequenceAttention m = mixed(random_mixed_adapter(shape, trial % 2 == 1, sink, recent, wblock, rng), shape);
      EXPECT_LT(compare(c, &m, layer, rng), kTolerance)
          << describe(c, "mixed") << " S=" << sink << " R=" << recent << " Bw=" << wblock << " " << isa_name;
      const SequenceAttention mt = mixed(m.adapter, shape, 0.5f);
      EXPECT_LT(compare(c, &mt, layer, rng), kTolerance) << describe(c, "mixed threshold 0.5") << " " << isa_name;
    }
  }
  std::printf("worst relative error so far: %.3g\n", worst_relative_error());
}

TEST(PagedAttention, ContextSplitsMergeExactlyForManyThreads) {
#ifdef _OPENMP
  const int saved = omp_get_max_threads();
  omp_set_num_threads(16);  // forces flash-decoding splits for a single decode token
#endif
  std::mt19937 rng(3);
  for (int ctx : {600, 1025, 4096, 5000}) {
    const Case c{4, 1, 64, 16, ctx, 1};
    const ModelShape shape = shape_of(c, 1);
    EXPECT_LT(compare(c, nullptr, 0, rng), kTolerance) << describe(c, "eager split");
    const SequenceAttention s = streaming(64, 1024, 16, shape);
    EXPECT_LT(compare(c, &s, 0, rng), kTolerance) << describe(c, "streaming split");
    const SequenceAttention m = mixed(random_mixed_adapter(shape, false, 4, 300, 1, rng), shape);
    EXPECT_LT(compare(c, &m, 0, rng), kTolerance) << describe(c, "mixed split");
  }
#ifdef _OPENMP
  omp_set_num_threads(saved);
#endif
}

TEST(PagedAttention, StreamingNeverReadsReleasedPages) {
  std::mt19937 rng(11);
  const Case c{8, 2, 32, 16, 3000, 1};
  const ModelShape shape = shape_of(c, 1);
  for (int wblock : {1, 16, 64}) {
    const SequenceAttention s = streaming(20, 100, wblock, shape);
    PagedFixture kv(c.num_kv_heads, c.head_dim, c.block_size, c.context, rng);
    // Release what the cache would: whole pages in [sink_end, local_start(t)).
    const int t = c.context - 1;
    const StreamingRule& rule = static_cast<const PagedPattern&>(*s.config).rule;
    const int first = (rule.sink_end + c.block_size - 1) / c.block_size;
    const int end = rule.local_start(t) / c.block_size;
    kv.release_pages(first, end);
    ASSERT_GT(end - first, 100);
    EXPECT_LT(compare(c, &s, 0, rng, &kv), kTolerance) << "window block " << wblock;
  }
}

TEST(PagedAttention, StreamingWithWindowsCoveringEverythingIsEager) {
  std::mt19937 rng(5);
  const Case c{4, 2, 16, 16, 300, 300};
  const ModelShape shape = shape_of(c, 1);
  const SequenceAttention s = streaming(0, 300, 1, shape);
  PagedFixture kv(c.num_kv_heads, c.head_dim, c.block_size, c.context, rng);
  std::vector<float> q(static_cast<size_t>(c.num_tokens) * c.num_heads * c.head_dim);
  std::normal_distribution<float> normal;
  for (float& x : q) x = normal(rng);
  std::vector<float> a(q.size()), b(q.size());
  LayerAttentionCall call{0, q.data(), c.num_tokens, 0, c.num_heads, c.num_kv_heads, c.head_dim, 0.25f, kv.view(), &s};
  call.out = a.data();
  attend(call);
  call.seq = nullptr;
  call.out = b.data();
  attend(call);
  EXPECT_EQ(a, b);  // the same keys in the same tiles: bit-identical
}

TEST(PagedAttention, KernelNameNamesTheIsaAndTheReferenceFallback) {
  IsaRestorer restore;
  ModelShape shape{1, 8, 2, 64, 512, ""};
  kernels::set_active_isa(kernels::Isa::kScalar);
  EXPECT_STREQ(attention_kernel_name(nullptr, shape), "paged_flash_scalar");
  SequenceAttention ref;
  ref.kernel = AttentionKernel::kReference;
  EXPECT_STREQ(attention_kernel_name(&ref, shape), "reference");
  ModelShape huge_group{1, 256, 2, 64, 512, ""};
  EXPECT_STREQ(attention_kernel_name(nullptr, huge_group), "reference");
  if (kernels::best_supported_isa() == kernels::Isa::kAvx512) {
    kernels::set_active_isa(kernels::Isa::kAvx512);
    EXPECT_STREQ(attention_kernel_name(nullptr, shape), "paged_flash_avx512");
  }
}

// The widest groups the fast kernel takes (attention_detail::kMaxGroup query heads per KV
// head, and one fewer) through paged_attention() itself, never the fallback: eager,
// streaming and mixed (per-query-head gates, so the dense/window flags of all heads differ),
// decode and prefill chunks, at page boundaries and past the 512-key context splits.
TEST(PagedAttention, LargestGroupsTheFastKernelTakesMatchReference) {
  IsaRestorer restore;
  std::mt19937 rng(9);
  constexpr int kG = attention_detail::kMaxGroup;
  struct GroupShape {
    int h, hkv, d, bs;
  };
  const GroupShape shapes[] = {{kG, 1, 8, 4}, {2 * kG, 2, 64, 16}, {kG - 1, 1, 40, 5}, {kG, 1, 128, 16}};
  for (kernels::Isa isa : supported_isas()) {
    kernels::set_active_isa(isa);
    for (const GroupShape& g : shapes) {
      for (const auto& [ctx, tokens] : std::vector<std::pair<int, int>>{{1, 1}, {50, 3}, {g.bs * 4, g.bs + 1},
                                                                         {129, 1}, {700, 1}, {1100, 2}}) {
        const Case c{g.h, g.hkv, g.d, g.bs, ctx, tokens};
        const ModelShape shape = shape_of(c, 2);
        const std::string isa_name = kernels::isa_name(isa);
        ASSERT_LE(c.num_heads / c.num_kv_heads, kG);
        EXPECT_LT(compare(c, nullptr, 1, rng, nullptr, FastPath::kPagedKernelOnly), kTolerance)
            << describe(c, "eager") << " " << isa_name;
        const SequenceAttention s = streaming(5, 40, 4, shape);
        EXPECT_LT(compare(c, &s, 1, rng, nullptr, FastPath::kPagedKernelOnly), kTolerance)
            << describe(c, "streaming") << " " << isa_name;
        const SequenceAttention m = mixed(random_mixed_adapter(shape, /*per_query_head=*/true, 5, 40, 4, rng), shape);
        EXPECT_LT(compare(c, &m, 1, rng, nullptr, FastPath::kPagedKernelOnly), kTolerance)
            << describe(c, "mixed") << " " << isa_name;
      }
    }
  }
  std::printf("worst relative error so far: %.3g\n", worst_relative_error());
}

// One query head more per KV head than the fast kernel takes: attend() must hand the call to
// the reference kernel, whose output it then is bit for bit (this checks the dispatch, not
// the arithmetic: both sides run attention_reference).
TEST(PagedAttention, GroupsBeyondTheFastKernelAreDispatchedToTheReference) {
  std::mt19937 rng(10);
  for (const int group : {attention_detail::kMaxGroup + 1, 130}) {
    const Case c{group, 1, 8, 4, 50, 3};
    const ModelShape shape = shape_of(c, 1);
    EXPECT_STREQ(attention_kernel_name(nullptr, shape), "reference") << "group " << group;
    PagedFixture kv(c.num_kv_heads, c.head_dim, c.block_size, c.context, rng);
    std::vector<float> q(static_cast<size_t>(c.num_tokens) * c.num_heads * c.head_dim);
    std::normal_distribution<float> normal;
    for (float& x : q) x = normal(rng);
    std::vector<float> dispatched(q.size(), kNaN), reference(q.size(), kNaN);
    LayerAttentionCall call{0,         q.data(), c.num_tokens, c.context - c.num_tokens, c.num_heads, c.num_kv_heads,
                            c.head_dim, 0.3f,     kv.view(),    nullptr};
    call.out = dispatched.data();
    EXPECT_FALSE(paged_attention_supports(call)) << "group " << group;
    attend(call);
    call.out = reference.data();
    attention_reference(call);
    EXPECT_EQ(dispatched, reference) << "group " << group;
  }
}

}  // namespace
}  // namespace hotswap
