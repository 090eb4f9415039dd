// The paged kernel on a bf16 KV cache (engine.kv_cache_dtype = bf16), on every ISA the CPU
// has: held tightly to the double-precision reference computed from the same bf16 rows (the
// kernel widens them in registers; nothing else may differ from the float32 kernel), and to a
// documented bound against the float32 cache the rows were rounded from.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "attention/layer_attention.h"
#include "attention/paged/paged_pattern.h"
#include "attention/paged_attention.h"
#include "attention/sequence_attention.h"
#include "engine/attention_choice.h"
#include "kernels/isa.h"

#include "attention_test_util.h"
#include "paged_patterns_util.h"

namespace hotswap {
namespace {

using namespace testing;  // attention_test_util.h

// Kernel on bf16 rows vs the double reference on the same rows: as for float32 rows.
constexpr double kTolerance = 1e-5;
// Kernel on bf16 rows vs the double reference on the float32 rows they were rounded from, as
// max |diff| / max |out| per row: K and V carry 2^-9 relative rounding each, which moves the
// scores by ~2^-9 * |q||k| * scale and the outputs by a few 2^-9 of their size (measured worst
// on these random N(0,1) caches: see the printout, 1.04e-2 over all ISAs).
constexpr double kBf16VsF32Bound = 2e-2;

struct Outputs {
  double vs_bf16_reference = 0, vs_f32_reference = 0;
};

// attend() on the bf16 view of `f`, against attention_reference() on the bf16 and f32 views.
Outputs compare(PagedFixture& f, int num_heads, int num_tokens, const SequenceAttention* seq, std::mt19937& rng) {
  const Bf16Kv b(f);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> q(static_cast<size_t>(num_tokens) * num_heads * f.head_dim);
  for (float& x : q) x = normal(rng);
  std::vector<float> fast(q.size(), kNaN), ref16(q.size(), kNaN), ref32(q.size(), kNaN);
  LayerAttentionCall call;
  call.q = q.data();
  call.num_tokens = num_tokens;
  call.first_position = f.context - num_tokens;
  call.num_heads = num_heads;
  call.num_kv_heads = f.num_kv_heads;
  call.head_dim = f.head_dim;
  call.scale = 1.0f / std::sqrt(static_cast<float>(f.head_dim));
  call.seq = seq;
  call.kv = b.view(f);
  call.out = fast.data();
  attend(call);
  call.out = ref16.data();
  attention_reference(call);
  call.kv = f.view();
  call.out = ref32.data();
  attention_reference(call);
  return {relative_error(fast, ref16, f.head_dim), relative_error(fast, ref32, f.head_dim)};
}

TEST(PagedAttentionBf16, MatchesTheReferenceOfTheRoundedRowsOnEveryIsa) {
  IsaRestorer restore;
  std::mt19937 rng(21);
  const std::vector<std::pair<int, int>> heads = {{1, 1}, {4, 2}, {8, 2}, {12, 3}, {16, 1}};
  const std::vector<int> dims = {8, 24, 40, 64, 80, 128};  // 24, 40, 80: vector tails on AVX2/AVX-512
  const std::vector<int> block_sizes = {1, 5, 16, 32};
  double worst_vs_f32 = 0;
  for (kernels::Isa isa : supported_isas()) {
    kernels::set_active_isa(isa);
    for (int trial = 0; trial < 24; ++trial) {
      const auto [h, hkv] = heads[rng() % heads.size()];
      const int d = dims[trial % dims.size()];
      const int bs = block_sizes[rng() % block_sizes.size()];
      const int ctx = trial % 8 == 0 ? 3000 + static_cast<int>(rng() % 1000) : 1 + static_cast<int>(rng() % 600);
      const int tokens = trial % 3 == 0 ? 1 : 1 + static_cast<int>(rng() % std::min(ctx, ctx > 1000 ? 3 : 24));
      const ModelShape shape{2, h, hkv, d, h * d, ""};
      const int sink = static_cast<int>(rng() % 30), recent = 1 + static_cast<int>(rng() % 90);
      const int window_block = std::vector<int>{1, 4, 16}[rng() % 3];
      const SequenceAttention stream = streaming(sink, recent, window_block, shape);
      // Random gates with exact 0s and 1s, per query head: the heads of a group need different
      // branches, so segments score one head (its row widened in registers) or several (widened
      // once for all).
      const SequenceAttention mix = mixed(random_mixed_adapter(shape, true, sink, recent, window_block, rng), shape);
      const std::string what = "H=" + std::to_string(h) + " Hkv=" + std::to_string(hkv) + " d=" + std::to_string(d) +
                               " B=" + std::to_string(bs) + " ctx=" + std::to_string(ctx) + " tokens=" +
                               std::to_string(tokens) + " isa " + kernels::isa_name(isa);
      const std::pair<const SequenceAttention*, const char*> patterns[] = {
          {nullptr, " eager"}, {&stream, " streaming"}, {&mix, " mixed"}};
      for (const auto& [seq, name] : patterns) {
        PagedFixture f(hkv, d, bs, ctx, rng);
        const Outputs o = compare(f, h, tokens, seq, rng);
        EXPECT_LT(o.vs_bf16_reference, kTolerance) << what << name;
        EXPECT_LT(o.vs_f32_reference, kBf16VsF32Bound) << what << name;
        worst_vs_f32 = std::max(worst_vs_f32, o.vs_f32_reference);
      }
    }
  }
  std::printf("bf16 KV: worst relative error vs the f32-KV reference %.3g (bound %.3g)\n", worst_vs_f32,
              kBf16VsF32Bound);
}

// A sequence's output may not depend on how its prompt was cut into steps (the scheduler
// cuts it by the batch's token budget): the tokens of one call equal, bitwise, the same tokens
// attended one call each, on both KV element types, for every pattern and ISA.
TEST(PagedAttentionBf16, AChunkEqualsItsTokensOneAtATimeBitwise) {
  IsaRestorer restore;
  std::mt19937 rng(24);
  const ModelShape shape{2, 8, 4, 32, 256, ""};
  const SequenceAttention stream = streaming(4, 8, 4, shape);
  const SequenceAttention mix = mixed(random_mixed_adapter(shape, true, 4, 8, 4, rng), shape);
  const int ctx = 40, tokens = 17;
  for (kernels::Isa isa : supported_isas()) {
    kernels::set_active_isa(isa);
    for (const SequenceAttention* seq : {static_cast<const SequenceAttention*>(nullptr), &stream, &mix}) {
      for (bool bf16 : {false, true}) {
        PagedFixture f(shape.num_kv_heads, shape.head_dim, 4, ctx, rng);
        const Bf16Kv b(f);
        std::normal_distribution<float> normal(0.0f, 1.0f);
        const size_t row = static_cast<size_t>(shape.num_heads) * shape.head_dim;
        std::vector<float> q(tokens * row);
        for (float& x : q) x = normal(rng);
        std::vector<float> whole(q.size(), kNaN), single(q.size(), kNaN);
        LayerAttentionCall call;
        call.num_heads = shape.num_heads;
        call.num_kv_heads = shape.num_kv_heads;
        call.head_dim = shape.head_dim;
        call.scale = 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
        call.seq = seq;
        call.kv = bf16 ? b.view(f) : f.view();
        call.q = q.data();
        call.num_tokens = tokens;
        call.first_position = ctx - tokens;
        call.out = whole.data();
        attend(call);
        for (int t = 0; t < tokens; ++t) {
          call.q = q.data() + t * row;
          call.num_tokens = 1;
          call.first_position = ctx - tokens + t;
          call.out = single.data() + t * row;
          attend(call);
        }
        for (size_t i = 0; i < q.size(); ++i) {
          ASSERT_EQ(whole[i], single[i]) << (bf16 ? "bf16 " : "f32 ") << (seq ? (seq == &mix ? "mixed" : "streaming") : "eager")
                                         << " isa " << kernels::isa_name(isa) << " token " << i / row << " element " << i % row;
        }
      }
    }
  }
}

// A lone decode token over a long context is split across threads (flash-decoding); the
// splits of a bf16 item merge as exactly as float32 ones.
TEST(PagedAttentionBf16, ContextSplitsMergeExactly) {
  IsaRestorer restore;
#ifdef _OPENMP
  const int saved = omp_get_max_threads();
  omp_set_num_threads(16);
#endif
  std::mt19937 rng(22);
  for (kernels::Isa isa : supported_isas()) {
    kernels::set_active_isa(isa);
    for (int ctx : {1025, 5000}) {
      PagedFixture f(1, 64, 16, ctx, rng);
      const Outputs o = compare(f, 4, 1, nullptr, rng);
      EXPECT_LT(o.vs_bf16_reference, kTolerance) << "ctx " << ctx << " isa " << kernels::isa_name(isa);
      EXPECT_LT(o.vs_f32_reference, kBf16VsF32Bound) << "ctx " << ctx << " isa " << kernels::isa_name(isa);
    }
  }
#ifdef _OPENMP
  omp_set_num_threads(saved);
#endif
}

// Released pages hold NaN (also after rounding): a bf16 read of one would poison the output.
TEST(PagedAttentionBf16, StreamingNeverReadsReleasedPages) {
  std::mt19937 rng(23);
  const int ctx = 2000, bs = 16;
  const ModelShape shape{1, 8, 2, 32, 256, ""};
  const SequenceAttention s = streaming(20, 100, 16, shape);
  PagedFixture f(2, 32, bs, ctx, rng);
  const StreamingRule& rule = static_cast<const PagedPattern&>(*s.config).rule;
  f.release_pages((rule.sink_end + bs - 1) / bs, rule.local_start(ctx - 1) / bs);
  const Outputs o = compare(f, 8, 1, &s, rng);
  EXPECT_LT(o.vs_bf16_reference, kTolerance);
  EXPECT_LT(o.vs_f32_reference, kBf16VsF32Bound);
}

}  // namespace
}  // namespace hotswap
