#include "kernels/linear.h"

#include <gtest/gtest.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <tuple>
#include <string>
#include <vector>

#include "kernels/isa.h"

namespace hotswap::kernels {
namespace {

// A weight matrix stored in `dtype` at a deliberately unaligned address inside its buffer
// (2 bytes past a 64-byte boundary for BF16/F16, as inside a safetensors file; 4 for F32).
struct StoredWeight {
  std::vector<uint8_t> bytes;
  TensorView view;
};

// The same with the given values (rounded to the dtype).
StoredWeight make_weight_from(DType dtype, int64_t n, int64_t k, const std::vector<float>& values) {
  const size_t elem = dtype_size(dtype);
  const size_t offset = dtype == DType::kF32 ? 4 : 2;
  StoredWeight w;
  w.bytes.resize(static_cast<size_t>(n * k) * elem + 64 + offset);
  uint8_t* base = w.bytes.data();
  base += (64 - reinterpret_cast<uintptr_t>(base) % 64) % 64 + offset;
  for (int64_t i = 0; i < n * k; ++i) {
    const float v = values[static_cast<size_t>(i)];
    if (dtype == DType::kF32) {
      std::memcpy(base + i * 4, &v, 4);
    } else {
      const uint16_t h = dtype == DType::kBF16 ? f32_to_bf16(v) : f32_to_f16(v);
      std::memcpy(base + i * 2, &h, 2);
    }
  }
  w.view = TensorView{dtype, {n, k}, base};
  return w;
}

StoredWeight make_weight(DType dtype, int64_t n, int64_t k, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> values(static_cast<size_t>(n * k));
  for (float& v : values) v = dist(rng);
  return make_weight_from(dtype, n, k, values);
}

std::vector<float> random_floats(int64_t count, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(count));
  for (float& f : v) f = dist(rng);
  return v;
}

// Checks |y - ref| <= tol · (sum_c |x·w| + |bias|) per element: a relative bound that stays
// meaningful when the dot product cancels to near zero.
void expect_close(const float* x, int64_t m, const TensorView& w, const float* bias, const float* y,
                  const float* ref, double tol, const std::string& what) {
  const int64_t n = w.shape[0], k = w.shape[1];
  const std::vector<float> wf = w.to_f32();
  int failures = 0;
  for (int64_t i = 0; i < m && failures < 5; ++i) {
    for (int64_t j = 0; j < n && failures < 5; ++j) {
      double scale = bias ? std::fabs(bias[j]) : 0.0;
      for (int64_t c = 0; c < k; ++c) scale += std::fabs(double{x[i * k + c]} * wf[j * k + c]);
      const double err = std::fabs(double{y[i * n + j]} - ref[i * n + j]);
      if (!(err <= tol * scale + 1e-30)) {
        ADD_FAILURE() << what << " y[" << i << "," << j << "] = " << y[i * n + j] << ", reference "
                      << ref[i * n + j] << ", |err| " << err << " > " << tol << " * " << scale;
        ++failures;
      }
    }
  }
}

struct Case {
  Isa isa;
  DType dtype;
  bool amx = false;  // AMX tiles allowed (kBf16Dot from kBf16DotMinRows rows)
};

std::string case_name(const testing::TestParamInfo<Case>& info) {
  return std::string(isa_name(info.param.isa)) + (info.param.amx ? "_amx_" : "_") +
         std::string(dtype_name(info.param.dtype));
}

// Every ISA with every weight dtype, AMX off; and BF16 weights with AMX where the CPU has it
// (it is used for nothing else).
std::vector<Case> cases_on_this_cpu() {
  std::vector<Case> cases;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (isa > best_supported_isa()) continue;
    for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) cases.push_back({isa, dtype});
  }
  if (cpu_has_amx_bf16()) cases.push_back({Isa::kAvx512, DType::kBF16, true});
  return cases;
}

class LinearTest : public testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    ASSERT_EQ(set_active_isa(GetParam().isa), GetParam().isa);
    ASSERT_EQ(set_amx_enabled(GetParam().amx), GetParam().amx);
  }
  void TearDown() override {
    set_active_isa(best_supported_isa());
    set_amx_enabled(true);
    set_linear_precision(LinearPrecision::kF32);
    set_bf16_gemm_form(measured_form_);
  }
  const Bf16GemmForm measured_form_ = bf16_gemm_form();
  // What linear_isa() reports with kBf16Dot on, whatever the weights.
  const char* bf16_dot_isa_name() const {
    if (GetParam().isa != Isa::kAvx512 || !cpu_has_avx512_bf16()) return isa_name(GetParam().isa);
    if (GetParam().amx) return "avx512_amx";
    return bf16_gemm_form() == Bf16GemmForm::kFma ? "avx512_bf16_fma" : "avx512_bf16";
  }

  // Runs linear() and linear_reference() on random data (x also unaligned) and compares.
  void check(int64_t m, int64_t n, int64_t k, bool with_bias, double tol, uint32_t seed) {
    std::mt19937 rng(seed);
    const StoredWeight w = make_weight(GetParam().dtype, n, k, rng);
    std::vector<float> x_storage = random_floats(m * k + 1, rng);
    const float* x = x_storage.data() + 1;
    const std::vector<float> bias = random_floats(n, rng);
    const float* b = with_bias ? bias.data() : nullptr;
    std::vector<float> y(static_cast<size_t>(m * n), NAN), ref(static_cast<size_t>(m * n), NAN);
    linear(x, m, w.view, b, y.data());
    linear_reference(x, m, w.view, b, ref.data());
    expect_close(x, m, w.view, b, y.data(), ref.data(), tol,
                 "m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k) +
                     (with_bias ? " bias" : ""));
  }
};

constexpr double kTolerance = 1e-5;

TEST_P(LinearTest, ReportsTheForcedIsa) {
  EXPECT_STREQ(linear_isa(), isa_name(GetParam().isa));
}

TEST_P(LinearTest, MatchesReferenceOnOddShapes) {
  const int64_t sizes[] = {1, 3, 17, 31, 33, 100, 257};
  const int64_t rows[] = {1, 2, 3, 4, 5, 7, 8, 16, 33, 64};
  uint32_t seed = 1;
  for (int64_t m : rows)
    for (int64_t n : sizes)
      for (int64_t k : sizes)
        for (bool with_bias : {false, true}) check(m, n, k, with_bias, kTolerance, seed++);
}

// Shapes that cross the kernels' blocking: several threads, k and n blocks, m panels.
TEST_P(LinearTest, MatchesReferenceOnLargeShapes) {
  struct Shape {
    int64_t m, n, k;
  };
  const Shape shapes[] = {{1, 1000, 2048}, {1, 517, 4100}, {2, 300, 1100}, {9, 130, 777},
                          {33, 301, 1100}, {70, 97, 1030}, {128, 64, 64},  {200, 200, 515}};
  uint32_t seed = 1000;
  for (const Shape& s : shapes) check(s.m, s.n, s.k, /*with_bias=*/true, kTolerance, seed++);
}

TEST_P(LinearTest, ZeroInnerDimensionGivesBias) {
  const TensorView w{GetParam().dtype, {3, 0}, nullptr};
  const float bias[3] = {1, 2, 3};
  float y[6] = {};
  linear(nullptr, 2, w, bias, y);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(y[i], bias[i % 3]);
}

// kBf16Dot rounds x to bf16 for BF16 weights, m >= kBf16DotMinRows; everything else must
// keep the exact path.
TEST_P(LinearTest, Bf16DotPrecisionStaysWithinItsBound) {
  set_linear_precision(LinearPrecision::kBf16Dot);
  const bool dot =
      GetParam().dtype == DType::kBF16 && GetParam().isa == Isa::kAvx512 && cpu_has_avx512_bf16();
  const double tol = dot ? 1.0 / 256 : kTolerance;
  EXPECT_STREQ(linear_isa(), bf16_dot_isa_name());
  uint32_t seed = 5000;
  for (int64_t m : {1, 7, 8, 10, 15, 16, 17, 33, 64, 100})
    for (int64_t k : {1, 2, 17, 64, 257, 1030})
      for (int64_t n : {1, 13, 100}) check(m, n, k, /*with_bias=*/m % 2 == 1, tol, seed++);
}

// Shapes that cross the bf16 form's blocking: k blocks (ragged and odd k), column tiles and
// thread ranges (n not a multiple of 16 or 64), row groups and the 512-row chunk.
TEST_P(LinearTest, Bf16DotPrecisionStaysWithinItsBoundOnLargeShapes) {
  set_linear_precision(LinearPrecision::kBf16Dot);
  const bool dot =
      GetParam().dtype == DType::kBF16 && GetParam().isa == Isa::kAvx512 && cpu_has_avx512_bf16();
  const double tol = dot ? 1.0 / 256 : kTolerance;
  struct Shape {
    int64_t m, n, k;
  };
  const Shape shapes[] = {{8, 200, 2048}, {9, 129, 513},  {11, 64, 256},  {13, 65, 255},  {14, 1000, 777},
                          {16, 197, 1025}, {20, 333, 2050}, {31, 17, 4097}, {47, 130, 300}, {513, 70, 300}};
  uint32_t seed = 7000;
  for (const Shape& s : shapes) {
    const bool with_bias = seed % 2 == 0;  // read before seed++: argument order is unspecified
    check(s.m, s.n, s.k, with_bias, tol, seed++);
  }
}

// The engine batches sequences freely, so a row of x must give bitwise the same y row
// whichever other rows share the call and wherever it sits in the batch.
TEST_P(LinearTest, Bf16DotRowsAreIndependentOfTheBatch) {
  if (GetParam().dtype != DType::kBF16 || GetParam().isa != Isa::kAvx512 || !cpu_has_avx512_bf16())
    GTEST_SKIP() << "kBf16Dot does not apply";
  set_linear_precision(LinearPrecision::kBf16Dot);
  for (auto [n, k] : {std::pair<int64_t, int64_t>{197, 1025}, {64, 256}, {300, 2048}}) {
    std::mt19937 rng(static_cast<uint32_t>(n * k));
    const StoredWeight w = make_weight(DType::kBF16, n, k, rng);
    const std::vector<float> bias = random_floats(n, rng);
    const std::vector<float> probe = random_floats(k, rng);
    // The probe row alone in the smallest batch the bf16 form takes.
    std::vector<float> x = random_floats(kBf16DotMinRows * k, rng);
    std::copy(probe.begin(), probe.end(), x.begin());
    std::vector<float> expected(static_cast<size_t>(kBf16DotMinRows * n));
    linear(x.data(), kBf16DotMinRows, w.view, bias.data(), expected.data());
    expected.resize(static_cast<size_t>(n));
    for (int64_t m : {kBf16DotMinRows, kBf16DotMinRows + 1, int64_t{13}, int64_t{16}, int64_t{17}, int64_t{23},
                      int64_t{64}, int64_t{100}, int64_t{515}}) {
      if (m < kBf16DotMinRows) continue;
      x = random_floats(m * k, rng);
      for (int64_t at : {int64_t{0}, m / 2, m - 1}) {
        std::copy(probe.begin(), probe.end(), x.begin() + at * k);
        std::vector<float> y(static_cast<size_t>(m * n));
        linear(x.data(), m, w.view, bias.data(), y.data());
        const std::vector<float> row(y.begin() + at * n, y.begin() + (at + 1) * n);
        EXPECT_EQ(row, expected) << "n=" << n << " k=" << k << " m=" << m << " row " << at;
      }
    }
  }
}

// The blocked bf16 form computed with float32 FMAs in vdpbf16ps's order (Bf16GemmForm::kFma,
// cpu/linear_bf16_fma_avx512.cc) gives vdpbf16ps's bits (kDot), denormals (read as zero and
// flushed by the instruction) and huge products included, for odd k, partial k blocks and
// partial column tiles; and it leaves MXCSR's controls (FTZ, DAZ) as it found them.
TEST_P(LinearTest, Bf16DotFmaFormGivesTheBitsOfVdpbf16ps) {
  if (GetParam().dtype != DType::kBF16 || GetParam().isa != Isa::kAvx512 || GetParam().amx ||
      !cpu_has_avx512_bf16())
    GTEST_SKIP() << "the blocked vdpbf16ps form does not apply";
  set_linear_precision(LinearPrecision::kBf16Dot);
  const unsigned csr = _mm_getcsr();
  std::mt19937 rng(99);
  // Rows of random magnitude classes: ordinary values (with a few huge ones), denormal bf16
  // values (which vdpbf16ps reads as zero), and small ones whose products with the small x rows
  // are denormal (which it flushes). Without bias too, so that such sums reach the output.
  auto rows_of = [&rng](int64_t rows, int64_t k, bool weights) {
    std::vector<float> v = random_floats(rows * k, rng);
    for (int64_t r = 0; r < rows; ++r) {
      const int kind = static_cast<int>(rng() % 4);
      for (int64_t c = 0; c < k; ++c) {
        float& e = v[static_cast<size_t>(r * k + c)];
        if (kind == 1) e = std::ldexp(e, weights ? -128 - static_cast<int>(rng() % 6) : -60);
        else if (kind == 2) e = std::ldexp(e, -70);
        else if (rng() % 64 == 0) e = std::ldexp(e, 60);
      }
    }
    return v;
  };
  // From kBf16FmaMinRows rows (below it both settings run vdpbf16ps): register tiles of 10, 11
  // and 12 rows.
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{64, 33, 7}, {70, 64, 256}, {100, 97, 1031},
                         {515, 40, 600}, {130, 130, 513}}) {
    const StoredWeight w = make_weight_from(DType::kBF16, n, k, rows_of(n, k, true));
    const std::vector<float> x = rows_of(m, k, false), bias = random_floats(n, rng);
    for (const float* b : {static_cast<const float*>(nullptr), bias.data()}) {
      std::vector<float> dot(static_cast<size_t>(m * n)), fma(dot.size());
      set_bf16_gemm_form(Bf16GemmForm::kDot);
      linear(x.data(), m, w.view, b, dot.data());
      set_bf16_gemm_form(Bf16GemmForm::kFma);
      linear(x.data(), m, w.view, b, fma.data());
      EXPECT_EQ(std::memcmp(dot.data(), fma.data(), dot.size() * sizeof(float)), 0)
          << "m=" << m << " n=" << n << " k=" << k << (b ? " bias" : "");
      EXPECT_EQ(_mm_getcsr() & ~0x3Fu, csr & ~0x3Fu) << "MXCSR's controls (its low 6 bits are sticky flags)";
    }
  }
}

// Below kBf16DotMinRows rows kBf16Dot multiplies the same bf16-rounded x in its GEMV, so a
// row alone (decode of one sequence) and the same row in a batch differ only by float32
// summation order, not by the rounding of x.
TEST_P(LinearTest, Bf16DotRoundsXAtEveryRowCount) {
  if (GetParam().dtype != DType::kBF16 || GetParam().isa != Isa::kAvx512 || !cpu_has_avx512_bf16())
    GTEST_SKIP() << "kBf16Dot does not apply";
  set_linear_precision(LinearPrecision::kBf16Dot);
  const int64_t n = 97, k = 1031;
  std::mt19937 rng(4242);
  const StoredWeight w = make_weight(DType::kBF16, n, k, rng);
  const std::vector<float> x = random_floats(kBf16DotMinRows * k, rng);
  std::vector<float> batched(static_cast<size_t>(kBf16DotMinRows * n));
  linear(x.data(), kBf16DotMinRows, w.view, nullptr, batched.data());
  for (int64_t m = 1; m < kBf16DotMinRows; ++m) {
    std::vector<float> small(static_cast<size_t>(m * n));
    linear(x.data(), m, w.view, nullptr, small.data());
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double magnitude = 0;  // sum_c |x·w|: the scale of float32 summation error
        for (int64_t c = 0; c < k; ++c)
          magnitude += std::fabs(static_cast<double>(x[i * k + c]) * w.view.at(j * k + c));
        EXPECT_NEAR(small[i * n + j], batched[i * n + j], 1e-6 * magnitude) << "m=" << m << " row " << i;
      }
    }
  }
}

// The bf16 path really runs (x is rounded) when enabled, and only then.
TEST_P(LinearTest, Bf16DotPrecisionChangesResultsOnlyWhereItApplies) {
  std::mt19937 rng(77);
  const StoredWeight w = make_weight(GetParam().dtype, 40, 96, rng);
  const std::vector<float> x = random_floats(32 * 96, rng);
  std::vector<float> exact(32 * 40), dot(32 * 40);
  linear(x.data(), 32, w.view, nullptr, exact.data());
  set_linear_precision(LinearPrecision::kBf16Dot);
  linear(x.data(), 32, w.view, nullptr, dot.data());
  const bool applies =
      GetParam().dtype == DType::kBF16 && GetParam().isa == Isa::kAvx512 && cpu_has_avx512_bf16();
  if (applies)
    EXPECT_NE(exact, dot);
  else
    EXPECT_EQ(exact, dot);
}

INSTANTIATE_TEST_SUITE_P(AllIsas, LinearTest, testing::ValuesIn(cases_on_this_cpu()), case_name);

// Run by CTest as kernels_test_isa_env_* with HOTSWAP_ISA set (see CMakeLists.txt); must be
// the first use of the kernels in the process, since the variable is read once.
TEST(LinearIsa, HotswapIsaEnvironmentVariableLowersTheIsa) {
  const char* env = std::getenv("HOTSWAP_ISA");
  if (env == nullptr) GTEST_SKIP() << "HOTSWAP_ISA not set";
  const Isa wanted = std::string(env) == "scalar" ? Isa::kScalar
                     : std::string(env) == "avx2" ? Isa::kAvx2
                                                  : Isa::kAvx512;
  EXPECT_EQ(active_isa(), std::min(wanted, best_supported_isa()));
  EXPECT_STREQ(linear_isa(), isa_name(active_isa()));
}

TEST(LinearIsa, ForcingAHigherIsaThanSupportedSelectsTheBest) {
  EXPECT_EQ(set_active_isa(Isa::kAvx512), best_supported_isa());
  EXPECT_EQ(set_active_isa(Isa::kScalar), Isa::kScalar);
  EXPECT_STREQ(linear_isa(), "scalar");
  set_active_isa(best_supported_isa());
}

}  // namespace
}  // namespace hotswap::kernels
