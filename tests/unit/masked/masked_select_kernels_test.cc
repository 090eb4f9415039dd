// The selection kernels (attention/masked/select_kernels.h): the AVX-512 build equals the
// portable one bit for bit (the selections built on them must not depend on the CPU), on
// random inputs with ragged lengths and, for Quest's bounds, signed zeros, infinities, NaN
// and subnormals (NaN scores only as NaN: every NaN ranks as +inf).
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "attention/masked/hash_functions.h"
#include "attention/masked/select_kernels.h"
#include "kernels/isa.h"

namespace hotswap::masked::detail {
namespace {

bool has_avx512() { return kernels::best_supported_isa() == kernels::Isa::kAvx512; }

TEST(MaskedSelectKernels, HammingCountAndTakeMatchThePortableBuild) {
  if (!has_avx512()) GTEST_SKIP() << "no AVX-512";
  const SelectKernels& ref = select_kernels_scalar();
  const SelectKernels& vec = select_kernels_avx512();
  std::mt19937_64 rng(7);
  for (int64_t n : {1, 15, 16, 17, 63, 64, 65, 200, 256, 1000}) {
    std::vector<uint32_t> w32(static_cast<size_t>(n));
    std::vector<uint64_t> w64(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) w64[static_cast<size_t>(i)] = rng(), w32[static_cast<size_t>(i)] = static_cast<uint32_t>(rng());
    const uint64_t q = rng();
    std::vector<uint8_t> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
    ref.hamming32(static_cast<uint32_t>(q), w32.data(), n, a.data());
    vec.hamming32(static_cast<uint32_t>(q), w32.data(), n, b.data());
    EXPECT_EQ(a, b) << n;
    ref.hamming64(q, w64.data(), n, a.data());
    vec.hamming64(q, w64.data(), n, b.data());
    EXPECT_EQ(a, b) << n;
    for (int64_t i = 0; i < n; i += 5) a[static_cast<size_t>(i)] = kSkipKey;
    for (int t : {0, 20, 32, 40, 64, int{kSkipKey}}) {
      EXPECT_EQ(ref.count_at_most(a.data(), n, t), vec.count_at_most(a.data(), n, t)) << n << " t " << t;
      for (int64_t ties : {int64_t{0}, int64_t{1}, int64_t{3}, n / 2, n}) {
        std::vector<float> wa(static_cast<size_t>(n), 0.0f), wb(wa);
        std::vector<int32_t> ka(static_cast<size_t>(n) + 16, -1), kb(ka);
        const int64_t ta = ref.take_below(a.data(), n, t, ties, wa.data(), ka.data());
        const int64_t tb = vec.take_below(a.data(), n, t, ties, wb.data(), kb.data());
        ASSERT_EQ(ta, tb) << n << " t " << t << " ties " << ties;
        EXPECT_EQ(wa, wb);
        EXPECT_TRUE(std::equal(ka.begin(), ka.begin() + ta, kb.begin()));
      }
    }
  }
}

TEST(MaskedSelectKernels, GatherNonzeroMatchesThePortableBuild) {
  if (!has_avx512()) GTEST_SKIP() << "no AVX-512";
  std::mt19937 rng(3);
  for (int64_t n : {1, 16, 17, 100, 4096 + 5}) {
    std::vector<float> wa(static_cast<size_t>(n), 0.0f);
    for (float& x : wa)
      if (rng() % 7 == 0) x = static_cast<float>(rng() % 100 + 1) / 100.0f;
    std::vector<float> wb = wa;
    std::vector<int32_t> ka(static_cast<size_t>(n) + 16), kb(ka);
    std::vector<float> va(static_cast<size_t>(n) + 16), vb(va);
    const int64_t ma = select_kernels_scalar().gather_nonzero(wa.data(), n, ka.data(), va.data());
    const int64_t mb = select_kernels_avx512().gather_nonzero(wb.data(), n, kb.data(), vb.data());
    ASSERT_EQ(ma, mb);
    EXPECT_TRUE(std::equal(ka.begin(), ka.begin() + ma, kb.begin()));
    EXPECT_TRUE(std::equal(va.begin(), va.begin() + ma, vb.begin()));
    EXPECT_EQ(wa, std::vector<float>(static_cast<size_t>(n), 0.0f));
    EXPECT_EQ(wb, wa);
  }
}

// Codes drawn from few values, so that some tables collide and most keys do not; every code
// width, table counts from 1 to 20 and 70 (a key's codes in a 4- or 8-byte lane, whole,
// partial and several registers a key) and ragged lengths.
template <class W>
void check_pig_collisions(std::mt19937& rng) {
  for (int tables : {1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 20, 70}) {
    for (int64_t n : {1, 15, 16, 17, 300}) {
      std::vector<W> codes(static_cast<size_t>(n * tables));
      std::vector<uint64_t> qc(static_cast<size_t>(tables));
      for (W& c : codes) c = static_cast<W>(rng() % 23);
      for (uint64_t& c : qc) c = rng() % 23;
      std::vector<int32_t> want;
      for (int64_t i = 0; i < n; ++i)
        for (int t = 0; t < tables; ++t)
          if (codes[static_cast<size_t>(i * tables + t)] == qc[static_cast<size_t>(t)]) {
            want.push_back(static_cast<int32_t>(1000 + i));
            break;
          }
      const std::string what = std::to_string(sizeof(W)) + "-byte codes, " + std::to_string(tables) + " tables, " +
                               std::to_string(n) + " keys";
      std::vector<int32_t> got(static_cast<size_t>(n) + 16);
      got.resize(static_cast<size_t>(select_kernels_scalar().pig_collisions(codes.data(), sizeof(W), n, tables,
                                                                            qc.data(), 1000, got.data())));
      EXPECT_EQ(got, want) << what;
      if (!has_avx512()) continue;
      std::vector<int32_t> vec(static_cast<size_t>(n) + 16);
      vec.resize(static_cast<size_t>(select_kernels_avx512().pig_collisions(codes.data(), sizeof(W), n, tables,
                                                                            qc.data(), 1000, vec.data())));
      EXPECT_EQ(vec, want) << what << " (AVX-512)";
    }
  }
}

TEST(MaskedSelectKernels, PigCollisionsMatchThePortableBuildAndAPlainScan) {
  std::mt19937 rng(4);
  check_pig_collisions<uint8_t>(rng);
  check_pig_collisions<uint16_t>(rng);
  check_pig_collisions<uint32_t>(rng);
  check_pig_collisions<uint64_t>(rng);
}

float special(std::mt19937& rng) {
  switch (rng() % 12) {
    case 0: return 0.0f;
    case 1: return -0.0f;
    case 2: return std::numeric_limits<float>::infinity();
    case 3: return -std::numeric_limits<float>::infinity();
    case 4: return std::numeric_limits<float>::quiet_NaN();
    case 5: return std::numeric_limits<float>::denorm_min() * static_cast<float>(rng() % 100);
    default: return std::normal_distribution<float>(0.0f, 1.0f)(rng);
  }
}

TEST(MaskedSelectKernels, QuestScoresAreQuestBoundBitForBit) {
  const bool avx512 = has_avx512();
  std::mt19937 rng(11);
  for (int d : {16, 48, 64, 128, 20}) {
    for (auto [kv_heads, group] : {std::pair{1, 1}, std::pair{2, 4}, std::pair{3, 5}}) {
      const int heads = kv_heads * group;
      for (int64_t n : {1, 15, 16, 33}) {
        for (bool odd : {false, true}) {  // odd: special values in bounds and queries
          const size_t stride = static_cast<size_t>(kv_heads) * 2 * d + 8;
          std::vector<float> records(stride * static_cast<size_t>(n)), q(static_cast<size_t>(heads) * d);
          std::normal_distribution<float> normal(0.0f, 1.0f);
          for (float& x : records) x = odd ? special(rng) : normal(rng);
          for (float& x : q) x = odd ? special(rng) : normal(rng);
          std::vector<float> want(static_cast<size_t>(heads) * n);
          for (int h = 0; h < heads; ++h)
            for (int64_t p = 0; p < n; ++p) {
              const float* b = records.data() + static_cast<size_t>(p) * stride + static_cast<size_t>(h / group) * 2 * d;
              want[static_cast<size_t>(h * n + p)] = quest_bound(q.data() + static_cast<size_t>(h) * d, b, b + d, d);
            }
          for (const SelectKernels* k : {&select_kernels_scalar(), avx512 ? &select_kernels_avx512() : nullptr}) {
            if (k == nullptr) continue;
            std::vector<float> got(want.size(), 1.0f);
            k->quest_scores(records.data(), stride, n, q.data(), kv_heads, group, d, got.data(), static_cast<size_t>(n));
            for (size_t i = 0; i < want.size(); ++i) {  // any NaN ranks as +inf: its payload does not matter
              if (std::isnan(got[i]) && std::isnan(want[i])) continue;
              ASSERT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(want[i]))
                  << "d " << d << " heads " << heads << " n " << n << " at " << i << ": " << got[i] << " vs " << want[i];
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace hotswap::masked::detail
