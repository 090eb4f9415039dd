// The q8 KV cache (engine.kv_cache_dtype = q8, kv_cache/kv_q8.h): the quantiser's bound
// |x - q*d| <= d/2 (+ the float32 rounding of q*d), zero and extreme blocks, determinism; the
// manager's bytes per block, the head-dim refusal, reads through the view and copy-on-write.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "core/load_error.h"
#include "kv_cache/kv_cache_manager.h"
#include "kv_cache/kv_q8.h"

namespace hotswap {
namespace {

// q*d is rounded to float32 once: at most 127 d 2^-24 off the exact product.
constexpr double kRoundingSlack = 127.0 / (1 << 24);

std::vector<int8_t> quantize(const std::vector<float>& x) {
  const int d = static_cast<int>(x.size());
  std::vector<int8_t> row(kv_row_units(KvDtype::kQ8, d));
  quantize_kv_row_q8(x.data(), d, row.data());
  return row;
}

TEST(KvCacheQ8, RoundTripWithinHalfAScale) {
  std::mt19937 rng(7);
  for (int d : {32, 64, 96, 128}) {
    for (float spread : {1e-30f, 1e-3f, 1.0f, 300.0f, 1e30f}) {
      std::normal_distribution<float> dist(0.0f, spread);
      std::vector<float> x(static_cast<size_t>(d));
      for (float& v : x) v = dist(rng);
      const std::vector<int8_t> row = quantize(x);
      std::vector<float> back(static_cast<size_t>(d));
      dequantize_kv_row_q8(row.data(), d, back.data());
      for (int b = 0; b < d / kKvQ8Block; ++b) {
        const float scale = kv_q8_scale(row.data(), d, b);
        float amax = 0.0f;
        for (int i = b * 32; i < b * 32 + 32; ++i) amax = std::fmax(amax, std::fabs(x[i]));
        EXPECT_EQ(scale, amax / 127.0f);
        for (int i = b * 32; i < b * 32 + 32; ++i) {
          EXPECT_GE(row[i], -127);
          EXPECT_LE(std::fabs(static_cast<double>(x[i]) - back[i]), scale * (0.5 + kRoundingSlack))
              << "d " << d << " spread " << spread << " i " << i;
          EXPECT_EQ(back[i], static_cast<float>(row[i]) * scale);
        }
      }
    }
  }
}

TEST(KvCacheQ8, ZeroAndExtremeBlocks) {
  std::vector<float> x(64, 0.0f);
  // Block 1: the block maximum maps to +-127 exactly, the largest float32 included.
  x[32] = FLT_MAX, x[33] = -FLT_MAX, x[35] = 1.0f;
  std::vector<int8_t> row = quantize(x);
  EXPECT_EQ(kv_q8_scale(row.data(), 64, 0), 0.0f) << "a zero block";
  for (int i = 0; i < 32; ++i) EXPECT_EQ(row[i], 0);
  EXPECT_EQ(row[32], 127);
  EXPECT_EQ(row[33], -127);
  EXPECT_EQ(row[35], 0);
  std::vector<float> back(64);
  dequantize_kv_row_q8(row.data(), 64, back.data());
  for (int i = 0; i < 32; ++i) EXPECT_EQ(back[i], 0.0f);
  EXPECT_TRUE(std::isfinite(back[32]) && std::isfinite(back[33]));
  // Denormal inputs: d underflows to 0, everything stores as 0 (error below 127 * 2^-149).
  std::vector<float> tiny(32, std::ldexp(1.0f, -148));
  row = quantize(tiny);
  EXPECT_EQ(kv_q8_scale(row.data(), 32, 0), 0.0f);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(row[i], 0);
  // max 127 gives d = 1: halves round to nearest even, as rint does.
  std::vector<float> h(32, 0.0f);
  h[0] = 127.0f, h[1] = 2.5f, h[2] = 3.5f, h[3] = -2.5f, h[4] = 0.5f;
  row = quantize(h);
  EXPECT_EQ(kv_q8_scale(row.data(), 32, 0), 1.0f);
  EXPECT_EQ(row[1], 2);
  EXPECT_EQ(row[2], 4);
  EXPECT_EQ(row[3], -2);
  EXPECT_EQ(row[4], 0);
  // A constant block stores q = 127 everywhere and reads back exactly.
  std::vector<float> c(32, -0.75f);
  row = quantize(c);
  dequantize_kv_row_q8(row.data(), 32, back.data());
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(row[i], -127);
    EXPECT_FLOAT_EQ(back[i], -0.75f);
  }
}

TEST(KvCacheQ8, Deterministic) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-4.0f, 4.0f);
  std::vector<float> x(128);
  for (float& v : x) v = u(rng);
  EXPECT_EQ(quantize(x), quantize(x));
}

TEST(KvCacheQ8, BytesPerBlockAndHeadDimRefusal) {
  const int64_t budget = 1 << 20;
  const KvLayout f32 = KvCacheManager::plan_layout(3, 2, 64, 16, 0, budget, KvDtype::kF32);
  const KvLayout q8 = KvCacheManager::plan_layout(3, 2, 64, 16, 0, budget, KvDtype::kQ8);
  EXPECT_EQ(q8.bytes_per_block_all_layers(), 2u * 3 * 2 * 16 * (64 + 2 * 4));
  EXPECT_EQ(q8.num_blocks, budget / static_cast<int64_t>(q8.bytes_per_block_all_layers()));
  EXPECT_GT(q8.num_blocks, 3 * f32.num_blocks);
  KvCacheManager kv(q8);
  EXPECT_EQ(kv.stats().bytes_per_block, q8.bytes_per_block_all_layers());
  EXPECT_EQ(kv.stats().dtype, KvDtype::kQ8);
  EXPECT_STREQ(kv_dtype_name(KvDtype::kQ8), "q8");
  try {
    KvCacheManager::plan_layout(3, 2, 80, 16, 1000, 0, KvDtype::kQ8);
    FAIL() << "head_dim 80 accepted for q8";
  } catch (const LoadError& e) {
    EXPECT_NE(std::string(e.what()).find("head dim is 80"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(KvCacheManager::plan_layout(3, 2, 80, 16, 1000, 0, KvDtype::kBf16));
}

TEST(KvCacheQ8, WritesQuantiseAndViewsReadTheDequantisedRows) {
  KvLayout l;
  l.num_layers = 2;
  l.num_kv_heads = 2;
  l.head_dim = 64;
  l.block_size = 4;
  l.num_blocks = 8;
  l.dtype = KvDtype::kQ8;
  KvCacheManager kv(l);
  BlockTable t;
  ASSERT_TRUE(kv.prepare_write(t, 0, 6).is_ok());
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.0f, 2.0f);
  std::vector<float> k(2 * 64), v(2 * 64);
  for (float& x : k) x = dist(rng);
  for (float& x : v) x = dist(rng);
  kv.write_kv(t, 1, 5, k.data(), v.data());
  const PagedKvView view = kv.view(t, 1);
  EXPECT_EQ(view.dtype, KvDtype::kQ8);
  std::vector<float> buf(64), expect(64);
  for (int h = 0; h < 2; ++h) {
    dequantize_kv_row_q8(quantize({k.begin() + h * 64, k.begin() + h * 64 + 64}).data(), 64, expect.data());
    const float* kr = view.key_row(5, h, buf.data());
    for (int x = 0; x < 64; ++x) EXPECT_EQ(kr[x], expect[x]) << h << " " << x;
  }
  // Copy-on-write of a shared q8 block carries its rows (values and scales).
  BlockTable child;
  kv.fork(t, child);
  ASSERT_TRUE(kv.prepare_write(child, 6, 1).is_ok());
  EXPECT_NE(child.blocks[1], t.blocks[1]);
  const PagedKvView child_view = kv.view(child, 1);
  std::vector<float> cbuf(64);
  for (int h = 0; h < 2; ++h) {
    const float* a = child_view.value_row(5, h, cbuf.data());
    const float* b = view.value_row(5, h, buf.data());
    for (int x = 0; x < 64; ++x) EXPECT_EQ(a[x], b[x]) << h << " " << x;
  }
}

}  // namespace
}  // namespace hotswap
