#include "attention/masked/sparse_attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "attention/layer_attention.h"
#include "attention/masked/sparse_attention_kernel.h"
#include "attention/paged_attention.h"
#include "kernels/isa.h"
#include "kv_cache/kv_layout.h"

#include "attention_test_util.h"

namespace hotswap {
namespace {

using namespace testing;  // attention_test_util.h

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr double kTolerance = 1e-5;

// One item's inputs and its two outputs (kernel, reference).
struct ItemData {
  std::vector<float> q, bias, out, ref;
  std::vector<int32_t> keys;
  SparseAttentionItem item;

  void bind(const PagedKvView* kv, int group, int kv_head, float scale) {
    item.q = q.data();
    item.group = group;
    item.kv_head = kv_head;
    item.kv = kv;
    item.keys = keys.data();
    item.num_keys = static_cast<int>(keys.size());
    item.bias = bias.data();
    item.scale = scale;
    item.out = out.data();
  }
  void run_reference() {
    SparseAttentionItem r = item;
    r.out = ref.data();
    sparse_attention_reference(r);
  }
};

// `n` distinct positions of [0, context) outside released pages, ascending.
std::vector<int32_t> choose_keys(const PagedFixture& f, int n, std::mt19937& rng) {
  std::vector<int32_t> all;
  for (int p = 0; p < f.context; ++p) {
    if (f.blocks[p / f.block_size] != kNoBlock) all.push_back(p);
  }
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(static_cast<size_t>(std::min<int>(n, static_cast<int>(all.size()))));
  std::sort(all.begin(), all.end());
  return all;
}

// Biases: mostly finite (0 or a few units either way), -inf with probability `p_inf`; head
// `dead_head` (if >= 0) attends no key at all.
std::vector<float> random_bias(int group, int num_keys, double p_inf, int dead_head, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> bias(static_cast<size_t>(group) * num_keys);
  for (int h = 0; h < group; ++h) {
    for (int j = 0; j < num_keys; ++j) {
      float& b = bias[static_cast<size_t>(h) * num_keys + j];
      const double r = u(rng);
      b = h == dead_head || r < p_inf ? -kInf : (r < 0.5 ? 0.0f : normal(rng));
    }
  }
  return bias;
}

ItemData make_item(const PagedFixture& f, const PagedKvView* kv, int group, int kv_head, int num_keys, double p_inf,
                   int dead_head, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  ItemData data;
  data.keys = choose_keys(f, num_keys, rng);
  const int n = static_cast<int>(data.keys.size());
  data.q.resize(static_cast<size_t>(group) * f.head_dim);
  for (float& x : data.q) x = normal(rng);
  data.bias = random_bias(group, n, p_inf, dead_head, rng);
  data.out.assign(data.q.size(), kNaN);
  data.ref.assign(data.q.size(), kNaN);
  data.bind(kv, group, kv_head, 1.0f / std::sqrt(static_cast<float>(f.head_dim)));
  return data;
}

std::string describe(int bs, int d, int group, int keys, const char* isa) {
  return "B=" + std::to_string(bs) + " d=" + std::to_string(d) + " group=" + std::to_string(group) +
         " keys=" + std::to_string(keys) + " isa=" + isa;
}

TEST(SparseAttention, MatchesReferenceForEveryIsaShapeAndKeyCount) {
  IsaRestorer restore;
  std::mt19937 rng(1);
  const int context = 12000;
  for (kernels::Isa isa : supported_isas()) {
    ASSERT_EQ(kernels::set_active_isa(isa), isa);
    for (int bs : {1, 16, 32}) {
      for (int d : {64, 128, 48}) {
        PagedFixture f(3, d, bs, context, rng);
        const PagedKvView kv = f.view();
        for (int group : {1, 2, 4, 8}) {
          for (int n : {1, 2, 15, 127, 128, 129, 300, 1000, 8192}) {
            const double p_inf = std::vector<double>{0.0, 0.2, 0.7}[rng() % 3];
            const int dead = group > 1 && rng() % 2 == 0 ? static_cast<int>(rng() % group) : -1;
            ItemData data = make_item(f, &kv, group, static_cast<int>(rng() % 3), n, p_inf, dead, rng);
            sparse_attention(&data.item, 1);
            data.run_reference();
            EXPECT_LT(relative_error(data.out, data.ref, d), kTolerance)
                << describe(bs, d, group, n, kernels::isa_name(isa)) << " p_inf=" << p_inf << " dead=" << dead;
          }
        }
      }
    }
  }
  std::printf("worst relative error so far: %.3g\n", worst_relative_error());
}

TEST(SparseAttention, SplitsMergeToTheSameResult) {
  IsaRestorer restore;
  std::mt19937 rng(2);
  for (kernels::Isa isa : supported_isas()) {
    kernels::set_active_isa(isa);
    for (int bs : {1, 16}) {
      PagedFixture f(2, 64, bs, 9000, rng);
      const PagedKvView kv = f.view();
      for (int group : {1, 4, 8}) {
        for (int n : {1, 7, 100, 513, 4096, 8192}) {
          // A high -inf rate leaves some heads without a key in some splits.
          ItemData data = make_item(f, &kv, group, 1, n, 0.9, group > 1 ? 0 : -1, rng);
          data.run_reference();
          attention_detail::sparse_attention_run(&data.item, 1, 1, 1);  // never splits
          const std::vector<float> unsplit = data.out;
          EXPECT_LT(relative_error(unsplit, data.ref, 64), kTolerance) << "unsplit " << describe(bs, 64, group, n, kernels::isa_name(isa));
          for (int splits : {2, 7, 64}) {
            std::fill(data.out.begin(), data.out.end(), kNaN);
            attention_detail::sparse_attention_run(&data.item, 1, splits, 1);
            EXPECT_LT(relative_error(data.out, data.ref, 64), kTolerance)
                << splits << " splits " << describe(bs, 64, group, n, kernels::isa_name(isa));
            EXPECT_LT(relative_error(data.out, unsplit, 64), kTolerance)
                << splits << " splits vs unsplit " << describe(bs, 64, group, n, kernels::isa_name(isa));
          }
        }
      }
    }
  }
}

TEST(SparseAttention, PublicEntrySplitsASingleItemAcrossManyThreads) {
#ifdef _OPENMP
  const int saved = omp_get_max_threads();
  omp_set_num_threads(16);  // 1 item < 2 x 16 threads: the keys are split
#endif
  std::mt19937 rng(3);
  PagedFixture f(2, 64, 16, 20000, rng);
  const PagedKvView kv = f.view();
  for (int n : {255, 600, 4096, 16384}) {
    ItemData data = make_item(f, &kv, 4, 0, n, 0.3, 2, rng);
    sparse_attention(&data.item, 1);
    data.run_reference();
    EXPECT_LT(relative_error(data.out, data.ref, 64), kTolerance) << "keys " << n;
  }
#ifdef _OPENMP
  omp_set_num_threads(saved);
#endif
}

TEST(SparseAttention, ManyItemsInOneCallEachGetTheirOwnResult) {
  IsaRestorer restore;
  std::mt19937 rng(4);
  PagedFixture f(4, 64, 16, 3000, rng);
  const PagedKvView kv = f.view();
  for (kernels::Isa isa : supported_isas()) {
    kernels::set_active_isa(isa);
    std::vector<ItemData> data;
    for (int i = 0; i < 37; ++i) {
      const int n = i % 9 == 0 ? 0 : 1 + static_cast<int>(rng() % 2500);
      data.push_back(make_item(f, &kv, 2, i % 4, n, 0.1, -1, rng));
    }
    std::vector<SparseAttentionItem> items;
    for (ItemData& d : data) {
      d.bind(&kv, 2, d.item.kv_head, d.item.scale);  // the vectors moved
      items.push_back(d.item);
    }
    sparse_attention(items.data(), static_cast<int>(items.size()));
    for (size_t i = 0; i < data.size(); ++i) {
      data[i].run_reference();
      EXPECT_LT(relative_error(data[i].out, data[i].ref, 64), kTolerance)
          << "item " << i << " keys " << data[i].item.num_keys << " " << kernels::isa_name(isa);
    }
  }
}

TEST(SparseAttention, AHeadWithEveryBiasMinusInfinityGetsZeros) {
  IsaRestorer restore;
  std::mt19937 rng(5);
  PagedFixture f(1, 64, 16, 1000, rng);
  const PagedKvView kv = f.view();
  for (kernels::Isa isa : supported_isas()) {
    kernels::set_active_isa(isa);
    for (int n : {0, 1, 200}) {
      ItemData data = make_item(f, &kv, 4, 0, n, 0.0, 1, rng);
      sparse_attention(&data.item, 1);
      for (int x = 0; x < 64; ++x) EXPECT_EQ(data.out[64 + x], 0.0f) << "keys " << n << " " << kernels::isa_name(isa);
      if (n == 0) {
        for (float y : data.out) EXPECT_EQ(y, 0.0f);
      }
    }
  }
}

// A key a head does not attend contributes exactly nothing to it, however large its value:
// a weight of ~1e-38 instead of 0 (exp clamped at -87) would show against values of 1e37.
TEST(SparseAttention, AKeyWithBiasMinusInfinityDoesNotReachTheHead) {
  IsaRestorer restore;
  std::mt19937 rng(6);
  PagedFixture f(1, 64, 16, 600, rng);
  const PagedKvView kv = f.view();
  // Position 300: huge V, and a K that scores high for every head.
  for (int x = 0; x < 64; ++x) const_cast<float*>(kv.value(300, 0))[x] = 3e37f;
  for (kernels::Isa isa : supported_isas()) {
    kernels::set_active_isa(isa);
    for (int n : {2, 129, 500}) {
      ItemData data = make_item(f, &kv, 2, 0, n, 0.0, -1, rng);
      if (!std::binary_search(data.keys.begin(), data.keys.end(), 300)) {  // make 300 one of the keys
        data.keys.back() = 300;
        std::sort(data.keys.begin(), data.keys.end());
        data.keys.erase(std::unique(data.keys.begin(), data.keys.end()), data.keys.end());
        data.bias = random_bias(2, static_cast<int>(data.keys.size()), 0.0, -1, rng);
      }
      const int j300 = static_cast<int>(std::lower_bound(data.keys.begin(), data.keys.end(), 300) - data.keys.begin());
      const int nk = static_cast<int>(data.keys.size());
      data.bias[j300] = -kInf;          // head 0 does not attend position 300
      data.bias[nk + j300] = 0.0f;      // head 1 does
      data.bind(&kv, 2, 0, data.item.scale);
      sparse_attention(&data.item, 1);
      data.run_reference();
      std::vector<float> head0(data.out.begin(), data.out.begin() + 64), ref0(data.ref.begin(), data.ref.begin() + 64);
      EXPECT_LT(relative_error(head0, ref0, 64), kTolerance) << "keys " << n << " " << kernels::isa_name(isa);
      if (nk > 1) {
        EXPECT_LT(std::abs(head0[0]), 1e3f) << "the huge value leaked into head 0";
      }
    }
  }
}

// Every key of [0, t] with bias 0 is eager attention of the decode token at t.
TEST(SparseAttention, AllKeysWithZeroBiasEqualTheDensePagedKernel) {
  IsaRestorer restore;
  std::mt19937 rng(7);
  struct Shape {
    int heads, kv_heads, d, bs;
  };
  const std::vector<Shape> shapes = {{32, 8, 64, 16}, {8, 2, 128, 1}, {4, 4, 48, 32}, {16, 2, 64, 32}, {8, 1, 48, 16}};
  for (kernels::Isa isa : supported_isas()) {
    kernels::set_active_isa(isa);
    for (const Shape& s : shapes) {
      for (int ctx : {1, 17, 128, 129, 1000, 5003}) {
        PagedFixture f(s.kv_heads, s.d, s.bs, ctx, rng);
        const PagedKvView kv = f.view();
        std::normal_distribution<float> normal(0.0f, 1.0f);
        std::vector<float> q(static_cast<size_t>(s.heads) * s.d);
        for (float& x : q) x = normal(rng);
        std::vector<float> dense(q.size(), kNaN), sparse(q.size(), kNaN);
        LayerAttentionCall call;
        call.q = q.data();
        call.num_tokens = 1;
        call.first_position = ctx - 1;
        call.num_heads = s.heads;
        call.num_kv_heads = s.kv_heads;
        call.head_dim = s.d;
        call.scale = 1.0f / std::sqrt(static_cast<float>(s.d));
        call.kv = kv;
        call.out = dense.data();
        paged_attention(&call, 1);

        const int group = s.heads / s.kv_heads;
        std::vector<int32_t> keys(static_cast<size_t>(ctx));
        for (int p = 0; p < ctx; ++p) keys[p] = p;
        const std::vector<float> bias(static_cast<size_t>(group) * ctx, 0.0f);
        std::vector<SparseAttentionItem> items;
        for (int kvh = 0; kvh < s.kv_heads; ++kvh) {
          SparseAttentionItem it;
          it.q = q.data() + static_cast<size_t>(kvh) * group * s.d;
          it.group = group;
          it.kv_head = kvh;
          it.kv = &kv;
          it.keys = keys.data();
          it.num_keys = ctx;
          it.bias = bias.data();
          it.scale = call.scale;
          it.out = sparse.data() + static_cast<size_t>(kvh) * group * s.d;
          items.push_back(it);
        }
        sparse_attention(items.data(), static_cast<int>(items.size()));
        EXPECT_LT(relative_error(sparse, dense, s.d), kTolerance)
            << "H=" << s.heads << " Hkv=" << s.kv_heads << " d=" << s.d << " B=" << s.bs << " ctx=" << ctx << " "
            << kernels::isa_name(isa);
      }
    }
  }
}

TEST(SparseAttention, NeverReadsReleasedPagesItIsNotGiven) {
  std::mt19937 rng(8);
  PagedFixture f(2, 64, 16, 4000, rng);
  for (int page = 10; page < 200; page += 3) f.release_page(page);
  const PagedKvView kv = f.view();
  for (int n : {50, 1000, 3000}) {
    ItemData data = make_item(f, &kv, 4, 1, n, 0.2, -1, rng);
    sparse_attention(&data.item, 1);
    data.run_reference();
    EXPECT_LT(relative_error(data.out, data.ref, 64), kTolerance) << "keys " << n;
  }
}

TEST(SparseAttention, KernelNameNamesTheIsa) {
  IsaRestorer restore;
  kernels::set_active_isa(kernels::Isa::kScalar);
  EXPECT_STREQ(sparse_attention_kernel_name(), "sparse_gather_scalar");
  if (kernels::best_supported_isa() >= kernels::Isa::kAvx2) {
    kernels::set_active_isa(kernels::Isa::kAvx2);
    EXPECT_STREQ(sparse_attention_kernel_name(), "sparse_gather_avx2");
  }
  if (kernels::best_supported_isa() >= kernels::Isa::kAvx512) {
    kernels::set_active_isa(kernels::Isa::kAvx512);
    EXPECT_STREQ(sparse_attention_kernel_name(), "sparse_gather_avx512");
  }
}

using SparseAttentionDeathTest = ::testing::Test;

TEST_F(SparseAttentionDeathTest, BadKeysAreBrokenInvariants) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::mt19937 rng(9);
  PagedFixture f(1, 64, 16, 100, rng);
  f.release_page(2);
  const PagedKvView kv = f.view();
  auto run = [&](std::vector<int32_t> keys) {
    std::vector<float> q(64, 1.0f), out(64), bias(keys.size(), 0.0f);
    SparseAttentionItem it;
    it.q = q.data();
    it.kv = &kv;
    it.keys = keys.data();
    it.num_keys = static_cast<int>(keys.size());
    it.bias = bias.data();
    it.out = out.data();
    sparse_attention(&it, 1);
  };
  EXPECT_DEATH(run({3, 5, 4}), "not strictly ascending");
  EXPECT_DEATH(run({3, 3}), "not strictly ascending");
  EXPECT_DEATH(run({1, 112}), "outside the block table");
  EXPECT_DEATH(run({-1}), "not strictly ascending");
  EXPECT_DEATH(run({1, 40}), "released KV page");
}

// The kernel on a bf16 or q8 cache (`Stored`: Bf16Kv or Q8Kv of `f`) vs the double reference
// of the same stored rows (read through PagedKvView::value_row: widened / dequantised), held
// as tightly as on float32 rows, unsplit and split; vs the float32 rows they were made from,
// to `vs_f32_bound`. Returns the worst error vs the float32 rows.
template <class Stored>
double check_stored_rows(const std::vector<int>& dims, const std::vector<int>& sizes, double vs_f32_bound, uint32_t seed) {
  IsaRestorer restore;
  std::mt19937 rng(seed);
  double worst_vs_f32 = 0;
  for (kernels::Isa isa : supported_isas()) {
    kernels::set_active_isa(isa);
    for (int bs : {1, 16}) {
      for (int d : dims) {
        PagedFixture f(2, d, bs, 5000, rng);
        const Stored stored(f);
        const PagedKvView kv = stored.view(f), kv32 = f.view();
        for (int group : {1, 4}) {
          for (int n : sizes) {
            ItemData data = make_item(f, &kv, group, 1, n, 0.2, -1, rng);
            const std::string what = describe(bs, d, group, n, kernels::isa_name(isa));
            sparse_attention(&data.item, 1);
            data.run_reference();
            EXPECT_LT(relative_error(data.out, data.ref, d), kTolerance) << what;
            std::vector<float> ref32(data.out.size(), kNaN);
            SparseAttentionItem r = data.item;
            r.kv = &kv32;
            r.out = ref32.data();
            sparse_attention_reference(r);
            const double vs_f32 = relative_error(data.out, ref32, d);
            EXPECT_LT(vs_f32, vs_f32_bound) << what;
            worst_vs_f32 = std::max(worst_vs_f32, vs_f32);
            std::fill(data.out.begin(), data.out.end(), kNaN);
            attention_detail::sparse_attention_run(&data.item, 1, 7, 1);
            EXPECT_LT(relative_error(data.out, data.ref, d), kTolerance) << "split " << what;
          }
        }
      }
    }
  }
  return worst_vs_f32;
}

// A bf16 KV cache (engine.kv_cache_dtype = bf16): the kernel widens the bf16 rows in
// registers; against the float32 rows they were rounded from, a documented bound (2^-9
// relative rounding of K and V; the measured worst is printed).
TEST(SparseAttention, Bf16CacheMatchesTheReferenceOfTheRoundedRows) {
  constexpr double kBf16VsF32Bound = 2e-2;
  const double worst = check_stored_rows<Bf16Kv>({64, 40, 128}, {1, 129, 1000, 4096}, kBf16VsF32Bound, 31);  // 40: tails
  std::printf("bf16 KV: worst relative error vs the f32-KV reference %.3g (bound %.3g)\n", worst, kBf16VsF32Bound);
}

// A q8 KV cache (engine.kv_cache_dtype = q8): the kernel dequantises in registers to the
// values the reference reads; vs the float32 rows they were quantised from, the bound of
// paged_attention_q8_test.cc (measured worst 1.31e-2).
TEST(SparseAttention, Q8CacheMatchesTheReferenceOfTheDequantisedRows) {
  constexpr double kQ8VsF32Bound = 4e-2;
  const double worst = check_stored_rows<Q8Kv>({64, 96, 128}, {1, 129, 4096}, kQ8VsF32Bound, 32);
  std::printf("q8 KV: worst relative error vs the f32-KV reference %.3g (bound %.3g)\n", worst, kQ8VsF32Bound);
}

}  // namespace
}  // namespace hotswap
