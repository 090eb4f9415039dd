// The paged kernel's prefill blocks (attention/paged_prefill_simd.inc) against its one-token
// items: a query's output must not depend on which other tokens share its block, so a call
// of many tokens (run in blocks where its heads are dense) gives every token bit for bit what
// the same tokens get as one-token calls. With one thread every call of 2+ tokens whose group
// has no streaming window runs in blocks (paged_attention.cc, tokens_per_block); two threads
// also shrink the blocks. Checked on every ISA (the portable build has no blocks: its calls
// must agree as well) and every KV dtype.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "attention/paged_attention.h"
#include "attention_test_util.h"
#include "paged_dtype_cases.h"

namespace hotswap::testing {
namespace {

class ThreadCount {
 public:
  ThreadCount() {
#ifdef _OPENMP
    saved_ = omp_get_max_threads();
#endif
  }
  ~ThreadCount() { set(saved_); }
  static void set(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
  }

 private:
  int saved_ = 1;
};

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// First index where a and b differ in bits, for the failure message.
size_t first_difference(const std::vector<float>& a, const std::vector<float>& b) {
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return i;
  }
  return a.size();
}

// The call's output with all its tokens in one call (threads as given), and with each token a
// call of its own, all passed to the kernel together on one thread (enough items: no context
// splits, whose merge rounds differently).
void expect_blocks_equal_items(const LayerAttentionCall& call, int threads, const std::string& what) {
  const size_t out_floats = static_cast<size_t>(call.num_tokens) * call.num_heads * call.head_dim;
  std::vector<float> whole(out_floats), alone(out_floats);
  LayerAttentionCall c = call;
  c.out = whole.data();
  ThreadCount::set(threads);
  paged_attention(&c, 1);

  std::vector<LayerAttentionCall> singles(static_cast<size_t>(call.num_tokens), call);
  const size_t token_floats = static_cast<size_t>(call.num_heads) * call.head_dim;
  for (int i = 0; i < call.num_tokens; ++i) {
    LayerAttentionCall& s = singles[static_cast<size_t>(i)];
    s.num_tokens = 1;
    s.first_position = call.first_position + i;
    s.q = call.q + i * token_floats;
    s.out = alone.data() + i * token_floats;
  }
  ThreadCount::set(1);
  paged_attention(singles.data(), static_cast<int>(singles.size()));
  const size_t at = first_difference(whole, alone);
  EXPECT_TRUE(bitwise_equal(whole, alone)) << what << " threads " << threads << ": first difference at token "
                                           << at / token_floats << " float " << at % token_floats << ": "
                                           << (at < whole.size() ? whole[at] : 0.0f) << " vs "
                                           << (at < alone.size() ? alone[at] : 0.0f);
}

TEST(PagedPrefillBlocks, EachTokenGetsTheBitsOfItsOwnItemOnEveryIsaAndKvDtype) {
  IsaRestorer restore;
  ThreadCount restore_threads;
  std::mt19937 rng(7);
  const std::vector<int> dims = {32, 64, 96, 128, 48};
  int calls = 0;
  for (kernels::Isa isa : supported_isas()) {
    kernels::set_active_isa(isa);
    for (int trial = 0; trial < 8; ++trial) {  // trial 0 has a context of 3,000+ keys
      PagedCase c = draw_paged_case(rng, trial, dims, isa);
      // Prefill chunks: several tokens, some past a tile (128 keys) or a block of 16 tokens.
      c.tokens = std::min(c.ctx, 2 + static_cast<int>(rng() % 70));
      for (const auto& [seq, name] : c.patterns()) {
        PagedFixture f(c.hkv, c.d, c.bs, c.ctx, rng);
        std::vector<float> q;
        LayerAttentionCall call = fixture_call(f, c.h, c.tokens, seq, q, rng);
        const std::string what = c.what + name;
        call.kv = f.view();
        expect_blocks_equal_items(call, 1, what + " f32");
        expect_blocks_equal_items(call, 2, what + " f32");
        const Bf16Kv bf16(f);
        call.kv = bf16.view(f);
        expect_blocks_equal_items(call, 1, what + " bf16");
        if (c.d % 32 == 0) {
          const Q8Kv q8(f);
          call.kv = q8.view(f);
          expect_blocks_equal_items(call, 1, what + " q8");
        }
        ++calls;
      }
    }
  }
  EXPECT_GT(calls, 0);
}

// A long prompt's chunk: many tiles and 16-token blocks, the Llama-3.2-1B group of 4.
TEST(PagedPrefillBlocks, ALongChunkMatchesItsOneTokenItems) {
  IsaRestorer restore;
  ThreadCount restore_threads;
  std::mt19937 rng(8);
  for (kernels::Isa isa : supported_isas()) {
    kernels::set_active_isa(isa);
    PagedFixture f(2, 64, 16, 1500, rng);
    std::vector<float> q;
    LayerAttentionCall call = fixture_call(f, 8, 100, nullptr, q, rng);
    const Bf16Kv bf16(f);
    call.kv = bf16.view(f);
    expect_blocks_equal_items(call, 1, std::string("isa ") + kernels::isa_name(isa));
  }
}

}  // namespace
}  // namespace hotswap::testing
