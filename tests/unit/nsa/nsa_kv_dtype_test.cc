// NSA served from a bf16 or q8 KV cache (engine.kv_cache_dtype). Its selected and sliding
// branches run on the paged kernel, which reads the bf16 / q8 rows directly; its block
// compression widens (dequantises) the rows it reads (values always, keys with compress_rope
// "post"; "pre" keys come un-rotated from the projection, never from the cache), and its
// compressed-block caches stay float32. Held, on every ISA, to the reference computed from
// the same rounded / dequantised K/V: the same selections, outputs within the float32
// suite's tolerance. Against the float32 cache the selections may flip where two blocks'
// importances are within rounding of each other, so that difference is printed, not bounded.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "attention/nsa/compressed_block_pool.h"
#include "attention/nsa/nsa_sequence_state.h"
#include "kernels/isa.h"
#include "kv_cache/kv_q8.h"
#include "nsa_serving_util.h"
#include "nsa_test_util.h"

namespace hotswap {
namespace {

using namespace testing;  // nsa_serving_util.h

// K and V as the cache holds them: each (position, KV head) row bf16-rounded or q8
// quantised and read back.
std::vector<float> as_stored(std::vector<float> x, int d, KvDtype dtype) {
  std::vector<int8_t> row(kv_row_units(KvDtype::kQ8, d));
  for (size_t r = 0; r < x.size() / static_cast<size_t>(d); ++r) {
    float* e = &x[r * static_cast<size_t>(d)];
    if (dtype == KvDtype::kBf16) {
      for (int i = 0; i < d; ++i) e[i] = bf16_to_f32(f32_to_bf16(e[i]));
    } else {
      quantize_kv_row_q8(e, d, row.data());
      dequantize_kv_row_q8(row.data(), d, e);
    }
  }
  return x;
}

void serve_from(KvDtype dtype, int head_dim) {
  const char* name = kv_dtype_name(dtype);
  const kernels::Isa saved = kernels::active_isa();
  ModelShape m;
  m.num_layers = 2;
  m.num_heads = 8;
  m.num_kv_heads = 2;
  m.head_dim = head_dim;
  m.hidden_size = 32;
  for (const NsaCompressRope rope : {NsaCompressRope::kPre, NsaCompressRope::kPost}) {
    NsaConfig cfg;
    cfg.compress_block_size = 16;
    cfg.compress_stride = 8;
    cfg.selection_block_size = 16;
    cfg.num_selected_blocks = 4;
    cfg.sliding_window_size = 48;
    cfg.k_compress = rope == NsaCompressRope::kPre ? NsaCompression::kMaxPool : NsaCompression::kMlp;
    cfg.v_compress = NsaCompression::kMlp;
    cfg.mlp_hidden_size = 16 * head_dim / 2 + 3;
    cfg.num_mem_tokens = 1;
    cfg.compress_rope = rope;
    auto adapter = random_nsa_adapter(m, cfg, 400);
    const int T = 500;
    const RawSequence s = random_sequence(m, T, 401);
    RawSequence rounded = s;  // what the cache holds
    rounded.k = as_stored(s.k, head_dim, dtype);
    rounded.v = as_stored(s.v, head_dim, dtype);
    const int row = m.num_heads * m.head_dim;
    std::vector<float> ref16(static_cast<size_t>(T) * row), ref32(ref16.size());
    nsa_attention_reference(rounded.inputs(), *adapter, 1, ref16.data());
    nsa_attention_reference(s.inputs(), *adapter, 1, ref32.data());
    for (kernels::Isa isa : {kernels::Isa::kScalar, kernels::Isa::kAvx2, kernels::Isa::kAvx512}) {
      if (kernels::set_active_isa(isa) != isa) continue;
      CompressedBlockPool pool(m.num_kv_heads, m.head_dim, 4);
      NsaSequenceState state(adapter, pool);
      PagedKv kv(T, m.num_kv_heads, m.head_dim, 16, 402, dtype);
      double worst16 = 0, worst32 = 0;
      // A prefill chunk, then decode steps.
      std::vector<int> chunks = {T - 60};
      chunks.resize(61, 1);
      serve(s, *adapter, 1, state, kv, chunks, [&](int first, int n, const std::vector<float>& out) {
        for (int64_t i = 0; i < static_cast<int64_t>(n) * row; ++i) {
          const size_t at = static_cast<size_t>(first) * row + static_cast<size_t>(i);
          worst16 = std::max(worst16, std::fabs(static_cast<double>(out[static_cast<size_t>(i)]) - ref16[at]));
          worst32 = std::max(worst32, std::fabs(static_cast<double>(out[static_cast<size_t>(i)]) - ref32[at]));
        }
      });
      EXPECT_LE(worst16, 2e-5) << name << " rope " << (rope == NsaCompressRope::kPre ? "pre" : "post") << " isa "
                               << kernels::isa_name(isa);
      std::printf("nsa %s KV, rope %s, isa %s: max |out - ref(stored rows)| %.3g, max |out - ref(f32 rows)| %.3g\n",
                  name, rope == NsaCompressRope::kPre ? "pre" : "post", kernels::isa_name(isa), worst16, worst32);
    }
  }
  kernels::set_active_isa(saved);
}

TEST(NsaBf16Kv, ServingFromBf16RowsEqualsTheReferenceOfTheRoundedRows) {
  serve_from(KvDtype::kBf16, 40);  // 40: vector tails on AVX2 and AVX-512
}

TEST(NsaQ8Kv, ServingFromQ8RowsEqualsTheReferenceOfTheDequantisedRows) {
  serve_from(KvDtype::kQ8, 64);  // q8 needs head_dim % 32 == 0
}

}  // namespace
}  // namespace hotswap
