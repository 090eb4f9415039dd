// The paged kernel on a q8 KV cache (engine.kv_cache_dtype = q8), on every ISA the CPU has:
// against the same kernel on the dequantised rows stored as float32 (the q8 kernel
// dequantises in registers to exactly those values, so the two must agree to float32
// accumulation noise), and to a documented bound against the float32 cache the rows were
// quantised from. Eager and streaming, splits, released pages.
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

// Kernel on q8 rows vs the same kernel (same ISA) on their dequantised float32 values. The
// SIMD paths form the same float32 products in the same order (measured 0 on AVX2 and
// AVX-512); the scalar one may contract float(q) * d into a different FMA. See the printout.
constexpr double kVsDequantisedBound = 1e-6;
// Kernel on q8 rows vs the double reference on the float32 rows they were quantised from, as
// max |diff| / max |out| per row: each K/V value moves by up to d/2 = max|block| / 254, about
// 1% of an N(0,1) block's max (~2.5); measured worst on these caches 1.82e-2 (all ISAs).
constexpr double kQ8VsF32Bound = 4e-2;

struct Outputs {
  double vs_dequantised = 0, vs_f32_reference = 0;
};

// attend() on the q8 view of `f` against attend() on the dequantised float32 rows and
// attention_reference() on the original float32 rows.
Outputs compare(PagedFixture& f, int num_heads, int num_tokens, const SequenceAttention* seq, std::mt19937& rng) {
  const Q8Kv q8(f);
  PagedFixture deq = f;
  q8.dequantise_in_place(deq);
  std::vector<float> q;
  LayerAttentionCall call = fixture_call(f, num_heads, num_tokens, seq, q, rng);
  std::vector<float> fast(q.size(), kNaN), fast32(q.size(), kNaN), ref32(q.size(), kNaN);
  call.kv = q8.view(f);
  call.out = fast.data();
  attend(call);
  call.kv = deq.view();
  call.out = fast32.data();
  attend(call);
  call.kv = f.view();
  call.out = ref32.data();
  attention_reference(call);
  return {relative_error(fast, fast32, f.head_dim), relative_error(fast, ref32, f.head_dim)};
}

TEST(PagedAttentionQ8, MatchesTheKernelOnTheDequantisedRowsOnEveryIsa) {
  IsaRestorer restore;
  std::mt19937 rng(41);
  const std::vector<int> dims = {32, 64, 96, 128};
  double worst_vs_f32 = 0, worst_vs_deq[3] = {0, 0, 0};
  for (kernels::Isa isa : supported_isas()) {
    kernels::set_active_isa(isa);
    for (int trial = 0; trial < 16; ++trial) {
      const PagedCase c = draw_paged_case(rng, trial, dims, isa);
      const int h = c.h, hkv = c.hkv, d = c.d, bs = c.bs, ctx = c.ctx, tokens = c.tokens;
      const std::string& what = c.what;
      for (const auto& [seq, name] : c.patterns()) {
        PagedFixture f(hkv, d, bs, ctx, rng);
        const Outputs o = compare(f, h, tokens, seq, rng);
        EXPECT_LT(o.vs_dequantised, kVsDequantisedBound) << what << name;
        EXPECT_LT(o.vs_f32_reference, kQ8VsF32Bound) << what << name;
        worst_vs_f32 = std::max(worst_vs_f32, o.vs_f32_reference);
        double& w = worst_vs_deq[static_cast<int>(isa)];
        w = std::max(w, o.vs_dequantised);
      }
    }
  }
  std::printf("q8 KV: worst relative error vs the same kernel on the dequantised rows: scalar %.3g avx2 %.3g "
              "avx512 %.3g (bound %.3g); vs the f32-KV reference %.3g (bound %.3g)\n",
              worst_vs_deq[0], worst_vs_deq[1], worst_vs_deq[2], kVsDequantisedBound, worst_vs_f32, kQ8VsF32Bound);
}

// A lone decode token over a long context is split across threads (flash-decoding); the
// splits of a q8 item merge as exactly as float32 ones.
TEST(PagedAttentionQ8, ContextSplitsMergeExactly) {
  std::mt19937 rng(42);
  for_split_contexts(rng, [&](PagedFixture& f, int heads, int tokens, const SequenceAttention* seq, const std::string& what) {
    const Outputs o = compare(f, heads, tokens, seq, rng);
    EXPECT_LT(o.vs_dequantised, kVsDequantisedBound) << what;
    EXPECT_LT(o.vs_f32_reference, kQ8VsF32Bound) << what;
  });
}

// Released pages hold NaN (as q8: NaN scales): a read of one would poison the output.
TEST(PagedAttentionQ8, StreamingNeverReadsReleasedPages) {
  std::mt19937 rng(43);
  with_released_pages(rng, [&](PagedFixture& f, int heads, int tokens, const SequenceAttention* seq, const std::string& what) {
    const Outputs o = compare(f, heads, tokens, seq, rng);
    EXPECT_LT(o.vs_dequantised, kVsDequantisedBound) << what;
    EXPECT_LT(o.vs_f32_reference, kQ8VsF32Bound) << what;
  });
}

}  // namespace
}  // namespace hotswap
