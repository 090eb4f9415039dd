// linear_bf16_packed: BF16 W packed once for AMX, multiplied with AMX at every row count.
#include "kernels/bf16_packed.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "isa_params.h"
#include "kernels/isa.h"
#include "kernels/linear.h"
#include "kernels/linear_team.h"
#include "kernels/team.h"

namespace hotswap::kernels {
namespace {

struct Packed {
  std::vector<uint16_t> stored;  // row-major BF16 W
  std::vector<uint32_t> words;   // its packed form (64-byte aligned inside)
  TensorView view;
  Bf16Packed packed;
};

std::vector<float> random_floats(int64_t count, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(count));
  for (float& f : v) f = dist(rng);
  return v;
}

Packed make_packed(int64_t n, int64_t k, std::mt19937& rng) {
  Packed p;
  for (float f : random_floats(n * k, rng)) p.stored.push_back(f32_to_bf16(f));
  p.view = TensorView{DType::kBF16, {n, k}, p.stored.data()};
  p.words.resize(static_cast<size_t>(bf16_packed_words(n, k)) + 16);
  uint32_t* aligned = p.words.data();
  while (reinterpret_cast<uintptr_t>(aligned) % 64 != 0) ++aligned;
  pack_bf16_weights(p.view, aligned);
  p.packed = Bf16Packed{aligned, n, k};
  return p;
}

class Bf16PackedTest : public testing::Test {
 protected:
  void SetUp() override {
    if (!cpu_has_amx_bf16()) GTEST_SKIP() << "CPU without AMX-BF16 (or the OS refused the tile state)";
    set_amx_enabled(true);
    set_linear_precision(LinearPrecision::kBf16Dot);
  }
  void TearDown() override { set_linear_precision(LinearPrecision::kF32); }
};

// kBf16Dot's bound against the exact reference: |y - ref| <= 2^-8 · (sum |x·w| + |bias|).
TEST_F(Bf16PackedTest, StaysWithinTheBf16DotBound) {
  uint32_t seed = 1;
  for (int64_t m : {1, 2, 7, 8, 16, 17, 33, 100})
    for (auto [n, k] : {std::pair<int64_t, int64_t>{1, 1}, {13, 17}, {32, 64}, {33, 65}, {100, 1030}, {70, 2049}}) {
      std::mt19937 rng(seed++);
      const Packed w = make_packed(n, k, rng);
      const std::vector<float> x = random_floats(m * k, rng), bias = random_floats(n, rng);
      std::vector<float> y(static_cast<size_t>(m * n), NAN), ref(static_cast<size_t>(m * n));
      linear_bf16_packed(x.data(), m, w.packed, bias.data(), y.data());
      linear_reference(x.data(), m, w.view, bias.data(), ref.data());
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double scale = std::fabs(bias[j]);
          for (int64_t c = 0; c < k; ++c) scale += std::fabs(double{x[i * k + c]} * w.view.at(j * k + c));
          ASSERT_LE(std::fabs(double{y[i * n + j]} - ref[i * n + j]), scale / 256 + 1e-30)
              << "m=" << m << " n=" << n << " k=" << k << " y[" << i << "," << j << "]";
        }
    }
}

// The packed layout changes where W comes from, not the arithmetic: from kBf16DotMinRows rows
// it is bitwise linear()'s AMX form on the stored W. Beyond 16 rows the packed form sums k in
// chunks (partial sums kept in y between them): {100, 333, 4100} and {515, 70, 1100} take
// three, with partial row blocks and partial column tiles.
TEST_F(Bf16PackedTest, EqualsLinearsAmxFormBitwise) {
  ASSERT_STREQ(linear_isa(), "avx512_amx");
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{8, 100, 1030}, {17, 64, 256}, {40, 333, 2050},
                         {515, 70, 300}, {100, 333, 4100}, {515, 70, 1100}, {64, 96, 8192}}) {
    std::mt19937 rng(static_cast<uint32_t>(m * n + k));
    const Packed w = make_packed(n, k, rng);
    const std::vector<float> x = random_floats(m * k, rng), bias = random_floats(n, rng);
    std::vector<float> packed(static_cast<size_t>(m * n)), stored(static_cast<size_t>(m * n));
    linear_bf16_packed(x.data(), m, w.packed, bias.data(), packed.data());
    linear(x.data(), m, w.view, bias.data(), stored.data());
    EXPECT_EQ(packed, stored) << "m=" << m << " n=" << n << " k=" << k;
  }
}

// Decode alone and in any batch: a row's result does not depend on the other rows, at every
// row count from 1 (the vdpbf16ps forms differ between their GEMV and blocked forms).
TEST_F(Bf16PackedTest, RowsAreIndependentOfTheBatchAtEveryRowCount) {
  const int64_t n = 197, k = 1025;
  std::mt19937 rng(99);
  const Packed w = make_packed(n, k, rng);
  const std::vector<float> probe = random_floats(k, rng), bias = random_floats(n, rng);
  std::vector<float> alone(static_cast<size_t>(n));
  linear_bf16_packed(probe.data(), 1, w.packed, bias.data(), alone.data());
  for (int64_t m : {2, 5, 7, 8, 15, 16, 17, 31, 32, 33, 64, 513}) {
    std::vector<float> x = random_floats(m * k, rng);
    for (int64_t at : {int64_t{0}, m / 2, m - 1}) {
      std::copy(probe.begin(), probe.end(), x.begin() + at * k);
      std::vector<float> y(static_cast<size_t>(m * n));
      linear_bf16_packed(x.data(), m, w.packed, bias.data(), y.data());
      EXPECT_EQ(std::vector<float>(y.begin() + at * n, y.begin() + (at + 1) * n), alone) << "m=" << m << " row " << at;
    }
  }
}

// Inside a region the caller opened (model/layer_regions), each thread's share of the tiles
// gives bitwise the whole call's y.
TEST_F(Bf16PackedTest, TeamSharesAreBitwiseTheWholeCall) {
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{1, 576, 576}, {3, 1536, 576}, {7, 100, 1030},
                         {1, 13, 17}}) {
    std::mt19937 rng(static_cast<uint32_t>(m + n + k));
    const Packed w = make_packed(n, k, rng);
    const std::vector<float> x = random_floats(m * k, rng), bias = random_floats(n, rng);
    std::vector<float> whole(static_cast<size_t>(m * n)), team(static_cast<size_t>(m * n), NAN);
    linear_bf16_packed(x.data(), m, w.packed, bias.data(), whole.data());
    team_run(team_threads(), [&](int index, int count) {
      linear_bf16_packed_team(x.data(), m, w.packed, bias.data(), team.data(), index, count);
    });
    EXPECT_EQ(team, whole) << "m=" << m << " n=" << n << " k=" << k;
  }
}

TEST_F(Bf16PackedTest, AppliesOnlyWithBf16ProductsAndAmx) {
  EXPECT_TRUE(bf16_packed_applies());
  set_amx_enabled(false);
  EXPECT_FALSE(bf16_packed_applies());
  set_amx_enabled(true);
  set_linear_precision(LinearPrecision::kF32);
  EXPECT_FALSE(bf16_packed_applies());
}

// Packed on every ISA: the AVX-512 register transpose and the element loop agree.
class Bf16PackedLayout : public ForcedIsaTest {};

TEST_P(Bf16PackedLayout, PairsAreTransposedIntoTilesOf32ColumnsAndZeroPadded) {
  const int64_t n = 35, k = 5;  // two tiles, the second 3 columns wide; k pads to 32 (16 pairs)
  std::vector<uint16_t> stored(static_cast<size_t>(n * k));
  for (size_t i = 0; i < stored.size(); ++i) stored[i] = static_cast<uint16_t>(i + 1);
  std::vector<uint32_t> storage(static_cast<size_t>(bf16_packed_words(n, k)) + 16, 0xdeadbeef);
  uint32_t* words = storage.data();
  while (reinterpret_cast<uintptr_t>(words) % 64 != 0) ++words;
  ASSERT_EQ(bf16_packed_words(n, k), 64 * 16);
  pack_bf16_weights(TensorView{DType::kBF16, {n, k}, stored.data()}, words);
  for (int64_t t = 0; t < 2; ++t)
    for (int64_t q = 0; q < 16; ++q)
      for (int64_t c = 0; c < 32; ++c) {
        const int64_t j = t * 32 + c;
        const auto at = [&](int64_t e) -> uint32_t { return j < n && e < k ? stored[j * k + e] : 0; };
        EXPECT_EQ(words[(t * 16 + q) * 32 + c], at(2 * q) | at(2 * q + 1) << 16) << "tile " << t << " pair " << q << " col " << c;
      }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, Bf16PackedLayout, testing::ValuesIn(isas_on_this_cpu()), isa_param_name);

}  // namespace
}  // namespace hotswap::kernels
