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

#include "attention/layer_attention.h"
#include "attention/paged_attention.h"
#include "attention/sequence_attention.h"
#include "engine/attention_choice.h"
#include "kernels/isa.h"

#include "attention_test_util.h"
#include "paged_dtype_cases.h"

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
  std::vector<float> q;
  LayerAttentionCall call = fixture_call(f, num_heads, num_tokens, seq, q, rng);
  std::vector<float> fast(q.size(), kNaN), ref16(q.size(), kNaN), ref32(q.size(), kNaN);
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
  const std::vector<int> dims = {8, 24, 40, 64, 80, 128};  // 24, 40, 80: vector tails on AVX2/AVX-512
  double worst_vs_f32 = 0;
  for (kernels::Isa isa : supported_isas()) {
    kernels::set_active_isa(isa);
    for (int trial = 0; trial < 24; ++trial) {
      const PagedCase c = draw_paged_case(rng, trial, dims, isa);
      const int h = c.h, hkv = c.hkv, d = c.d, bs = c.bs, ctx = c.ctx, tokens = c.tokens;
      const std::string& what = c.what;
      for (const auto& [seq, name] : c.patterns()) {
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
// attended one call each, on every KV element type, for every pattern and ISA.
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
      for (KvDtype dtype : {KvDtype::kF32, KvDtype::kBf16, KvDtype::kQ8}) {
        PagedFixture f(shape.num_kv_heads, shape.head_dim, 4, ctx, rng);
        const Bf16Kv b(f);
        const Q8Kv q8(f);
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
        call.kv = dtype == KvDtype::kBf16 ? b.view(f) : dtype == KvDtype::kQ8 ? q8.view(f) : f.view();
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
          ASSERT_EQ(whole[i], single[i]) << kv_dtype_name(dtype) << (seq ? (seq == &mix ? " mixed" : " streaming") : " eager")
                                         << " isa " << kernels::isa_name(isa) << " token " << i / row << " element " << i % row;
        }
      }
    }
  }
}

// A lone decode token over a long context is split across threads (flash-decoding); the
// splits of a bf16 item merge as exactly as float32 ones.
TEST(PagedAttentionBf16, ContextSplitsMergeExactly) {
  std::mt19937 rng(22);
  for_split_contexts(rng, [&](PagedFixture& f, int heads, int tokens, const SequenceAttention* seq, const std::string& what) {
    const Outputs o = compare(f, heads, tokens, seq, rng);
    EXPECT_LT(o.vs_bf16_reference, kTolerance) << what;
    EXPECT_LT(o.vs_f32_reference, kBf16VsF32Bound) << what;
  });
}

// Released pages hold NaN (also after rounding): a read of one would poison the output.
TEST(PagedAttentionBf16, StreamingNeverReadsReleasedPages) {
  std::mt19937 rng(23);
  with_released_pages(rng, [&](PagedFixture& f, int heads, int tokens, const SequenceAttention* seq, const std::string& what) {
    const Outputs o = compare(f, heads, tokens, seq, rng);
    EXPECT_LT(o.vs_bf16_reference, kTolerance) << what;
    EXPECT_LT(o.vs_f32_reference, kBf16VsF32Bound) << what;
  });
}

}  // namespace
}  // namespace hotswap
