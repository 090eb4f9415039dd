// The bf16 KV cache (engine.kv_cache_dtype = bf16) at the manager: half the bytes per block,
// so the same byte budget holds twice the tokens; writes round each element to nearest even;
// reads through the view hand the widened rows back; copy-on-write copies bf16 blocks whole.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "kv_cache/kv_cache_manager.h"

namespace hotswap {
namespace {

TEST(KvCacheBf16, SameBytesHoldTwiceTheTokens) {
  const int64_t budget = 1 << 20;
  const KvLayout f32 = KvCacheManager::plan_layout(3, 2, 64, 16, 0, budget, KvDtype::kF32);
  const KvLayout bf16 = KvCacheManager::plan_layout(3, 2, 64, 16, 0, budget, KvDtype::kBf16);
  EXPECT_EQ(f32.bytes_per_block_all_layers(), 2u * 3 * 2 * 16 * 64 * 4);
  EXPECT_EQ(bf16.bytes_per_block_all_layers(), 2u * 3 * 2 * 16 * 64 * 2);
  EXPECT_EQ(bf16.num_blocks, 2 * f32.num_blocks);
  EXPECT_EQ(bf16.dtype, KvDtype::kBf16);
  KvCacheManager kv(bf16);
  EXPECT_EQ(kv.stats().bytes_per_block, bf16.bytes_per_block_all_layers());
  EXPECT_EQ(kv.stats().dtype, KvDtype::kBf16);
  // A token budget gives the same blocks either way.
  EXPECT_EQ(KvCacheManager::plan_layout(3, 2, 64, 16, 1000, 0, KvDtype::kBf16).num_blocks,
            KvCacheManager::plan_layout(3, 2, 64, 16, 1000, 0, KvDtype::kF32).num_blocks);
}

TEST(KvCacheBf16, WritesRoundToNearestEvenAndViewsReadTheWidenedRows) {
  KvLayout l;
  l.num_layers = 2;
  l.num_kv_heads = 2;
  l.head_dim = 4;
  l.block_size = 4;
  l.num_blocks = 8;
  l.dtype = KvDtype::kBf16;
  KvCacheManager kv(l);
  BlockTable t;
  ASSERT_TRUE(kv.prepare_write(t, 0, 6).is_ok());
  // bf16's step at 1 is 2^-7. 1 + 2^-8 is halfway between 1 and 1 + 2^-7: the tie goes to the
  // even mantissa (1.0); 1 + 3*2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: it goes up to the
  // even 1 + 2^-6; 1 + 2^-8 + 2^-20 is above the tie and rounds up to 1 + 2^-7.
  const float tie_down = 1.0f + std::ldexp(1.0f, -8), tie_up = 1.0f + 3 * std::ldexp(1.0f, -8);
  const float above = 1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20);
  std::vector<float> k = {tie_down, tie_up, above, -2.5f, 0.0f, 1e-3f, -7.0f, 3.14159f};
  std::vector<float> v = {3.14159f, -7.0f, 1e-3f, 0.0f, -2.5f, above, tie_up, tie_down};
  kv.write_kv(t, 1, 5, k.data(), v.data());
  const PagedKvView view = kv.view(t, 1);
  EXPECT_EQ(view.dtype, KvDtype::kBf16);
  float buf[4];
  const float* k0 = view.key_row(5, 0, buf);
  EXPECT_EQ(k0[0], 1.0f);
  EXPECT_EQ(k0[1], 1.0f + std::ldexp(1.0f, -6));
  EXPECT_EQ(k0[2], 1.0f + std::ldexp(1.0f, -7));
  EXPECT_EQ(k0[3], -2.5f);
  const float* v1 = view.value_row(5, 1, buf);
  for (int x = 0; x < 4; ++x) EXPECT_EQ(v1[x], bf16_to_f32(f32_to_bf16(v[4 + x]))) << x;
  // Copy-on-write of a shared bf16 block carries its rows.
  BlockTable child;
  kv.fork(t, child);
  ASSERT_TRUE(kv.prepare_write(child, 6, 1).is_ok());
  EXPECT_NE(child.blocks[1], t.blocks[1]);
  const PagedKvView child_view = kv.view(child, 1);
  float cbuf[4];
  for (int x = 0; x < 4; ++x) EXPECT_EQ(child_view.key_row(5, 0, cbuf)[x], view.key_row(5, 0, buf)[x]) << x;
}

TEST(KvCacheBf16, Float32AccessToABf16CacheIsABrokenInvariant) {
  KvLayout l;
  l.num_layers = 1;
  l.num_kv_heads = 1;
  l.head_dim = 4;
  l.block_size = 4;
  l.num_blocks = 1;
  l.dtype = KvDtype::kBf16;
  KvStorage storage(l);
  EXPECT_DEATH(storage.keys(0), "float32 access to a bf16 KV cache");
}

}  // namespace
}  // namespace hotswap
