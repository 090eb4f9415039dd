// q8 and q4 weights (kernels/q8.h): the load-time quantisation's round-trip bound, linear_q8 on
// every ISA and both formats against a double-precision oracle of the quantised operands (tight) and against
// the float32 product of the original weights (the bound kernels/q8.h states), bitwise agreement between ISAs
// and between a row alone and the same row in a batch.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "isa_params.h"
#include "kernels/linear.h"
#include "kernels/q8.h"

namespace hotswap::kernels {
namespace {

struct AlignedDelete {
  void operator()(uint8_t* p) const { ::operator delete[](p, std::align_val_t{64}); }
};

// A weight stored as `dtype`, and its q8 or q4 form in 64-byte aligned buffers.
struct Q8Weight {
  std::vector<float> f32;  // the weights as stored, widened
  std::vector<uint16_t> halves;
  TensorView view;
  std::unique_ptr<uint8_t[], AlignedDelete> buffer;
  Q8Matrix q8;
};

std::unique_ptr<Q8Weight> make_q8(DType dtype, int64_t n, int64_t k, std::mt19937& rng, float magnitude = 1.0f,
                                  QuantFormat format = QuantFormat::kQ8) {
  auto w = std::make_unique<Q8Weight>();
  std::uniform_real_distribution<float> dist(-magnitude, magnitude);
  w->f32.resize(static_cast<size_t>(n * k));
  w->halves.resize(w->f32.size());
  for (size_t i = 0; i < w->f32.size(); ++i) {
    float v = dist(rng);
    if (dtype == DType::kBF16) w->halves[i] = f32_to_bf16(v), v = bf16_to_f32(w->halves[i]);
    if (dtype == DType::kF16) w->halves[i] = f32_to_f16(v), v = f16_to_f32(w->halves[i]);
    w->f32[i] = v;
  }
  w->view =
      TensorView{dtype, {n, k}, dtype == DType::kF32 ? static_cast<const void*>(w->f32.data()) : w->halves.data()};
  const size_t qs = static_cast<size_t>(quant_qs_bytes(format, n, k)),
               sc = static_cast<size_t>(q8_scale_count(n, k)) * 2;
  w->buffer.reset(static_cast<uint8_t*>(::operator new[](qs + sc + 64, std::align_val_t{64})));
  auto* scales = reinterpret_cast<uint16_t*>(w->buffer.get() + qs);
  EXPECT_EQ(quantize_weights(w->view, format, w->buffer.get(), scales), "");
  w->q8 = Q8Matrix{w->buffer.get(), scales, n, k, format};
  return w;
}

std::vector<float> random_floats(int64_t count, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(count));
  for (float& f : v) f = dist(rng);
  return v;
}

float block_scale(const Q8Matrix& w, int64_t j, int64_t b) {
  const int64_t blocks = q8_blocks(w.k);
  return f16_to_f32(w.scales[((j / kQ8PanelRows) * blocks + b) * kQ8PanelRows + j % kQ8PanelRows]);
}

TEST(Q8Quantize, RoundTripIsWithinHalfAScaleAndTheScaleIsTight) {
  std::mt19937 rng(1);
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    // Magnitudes from large to below the smallest normal f16 scale (6.1e-5 · 127).
    for (float magnitude : {30.0f, 1.0f, 0.02f, 1e-4f}) {
      if (dtype == DType::kF16 && magnitude < 1e-3f) continue;  // f16 weights flush to subnormals there
      const int64_t n = 37, k = 101;
      const auto w = make_q8(dtype, n, k, rng, magnitude);
      for (int64_t j = 0; j < n; ++j) {
        for (int64_t b = 0; b < q8_blocks(k); ++b) {
          float amax = 0;
          for (int64_t c = b * kQ8Block; c < std::min(k, (b + 1) * kQ8Block); ++c)
            amax = std::max(amax, std::fabs(w->f32[static_cast<size_t>(j * k + c)]));
          const float d = block_scale(w->q8, j, b);
          ASSERT_GE(d * 127.0f, amax) << "the scale is rounded up: no weight is clamped";
          // Rounded up to the next half: at most one half-ulp step above amax / 127 (2^-10
          // relative for normal halves, 2^-24 absolute below).
          EXPECT_LE(d, amax / 127.0f * (1 + 1.0f / 1024) + 6e-8f) << "row " << j << " block " << b;
          for (int64_t c = b * kQ8Block; c < std::min(k, (b + 1) * kQ8Block); ++c) {
            const float err = std::fabs(q8_weight(w->q8, j, c) - w->f32[static_cast<size_t>(j * k + c)]);
            ASSERT_LE(err, d / 2 * (1 + 1e-6f))
                << dtype_name(dtype) << " magnitude " << magnitude << " [" << j << ", " << c << "]";
          }
        }
      }
    }
  }
}

TEST(Q8Quantize, PaddingAndZeroBlocksAreZero) {
  std::mt19937 rng(2);
  auto w = make_q8(DType::kF32, 3, 40, rng);  // one panel of 16 rows, 2 blocks of 32
  for (int64_t c = 0; c < 40; ++c) w->f32[static_cast<size_t>(1 * 40 + c)] = 0.0f;  // an all-zero row
  ASSERT_EQ(quantize_weights(w->view, QuantFormat::kQ8, const_cast<uint8_t*>(w->q8.qs), const_cast<uint16_t*>(w->q8.scales)), "");
  for (int64_t c = 0; c < 64; ++c) EXPECT_EQ(q8_weight(w->q8, 1, c), 0.0f);
  for (int64_t j = 3; j < 16; ++j)
    for (int64_t c = 0; c < 64; ++c) EXPECT_EQ(q8_weight(w->q8, j, c), 0.0f) << "padding row " << j;
  for (int64_t c = 40; c < 64; ++c) EXPECT_EQ(q8_weight(w->q8, 0, c), 0.0f) << "padding column " << c;
}

TEST(Q8Quantize, UnrepresentableWeightsAreNamed) {
  std::mt19937 rng(3);
  auto w = make_q8(DType::kF32, 20, 64, rng);
  for (float bad : {NAN, INFINITY, 1e8f}) {
    w->f32[static_cast<size_t>(17 * 64 + 5)] = bad;
    const std::string error = quantize_weights(w->view, QuantFormat::kQ8, const_cast<uint8_t*>(w->q8.qs), const_cast<uint16_t*>(w->q8.scales));
    EXPECT_NE(error.find("weight [17, 5]"), std::string::npos) << error;
  }
}

// q4: |d| is the smallest half giving the block's larger side 8 steps and the other 7, so
// nothing is clamped, every weight is within |d|/2, and |d| is within a half-ulp of
// max(larger/8, smaller/7) over the better sign.
TEST(Q4Quantize, RoundTripIsWithinHalfAScaleAndTheScaleIsTight) {
  std::mt19937 rng(11);
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (float magnitude : {30.0f, 1.0f, 0.02f, 1e-4f}) {
      if (dtype == DType::kF16 && magnitude < 1e-3f) continue;
      const int64_t n = 37, k = 101;
      const auto w = make_q8(dtype, n, k, rng, magnitude, QuantFormat::kQ4);
      int negative_scales = 0;
      for (int64_t j = 0; j < n; ++j) {
        for (int64_t b = 0; b < q8_blocks(k); ++b) {
          float pos = 0, neg = 0;
          for (int64_t c = b * kQ8Block; c < std::min(k, (b + 1) * kQ8Block); ++c) {
            const float v = w->f32[static_cast<size_t>(j * k + c)];
            pos = std::max(pos, v), neg = std::max(neg, -v);
          }
          const float d = block_scale(w->q8, j, b),
                      best = std::min(std::max(neg / 8, pos / 7), std::max(pos / 8, neg / 7));
          negative_scales += d < 0;
          EXPECT_GE(std::fabs(d), best * (1 - 1e-6f)) << "row " << j << " block " << b;
          EXPECT_LE(std::fabs(d), best * (1 + 1.0f / 1024) + 6e-8f) << "row " << j << " block " << b;
          for (int64_t c = b * kQ8Block; c < std::min(k, (b + 1) * kQ8Block); ++c) {
            const int code = quant_code(w->q8, j, c);
            ASSERT_TRUE(code >= -8 && code <= 7);
            const float err = std::fabs(q8_weight(w->q8, j, c) - w->f32[static_cast<size_t>(j * k + c)]);
            ASSERT_LE(err, std::fabs(d) / 2 * (1 + 1e-6f))
                << dtype_name(dtype) << " magnitude " << magnitude << " [" << j << ", " << c << "]";
          }
        }
      }
      EXPECT_GT(negative_scales, 0) << "both signs occur on random data";
    }
  }
}

TEST(Q4Quantize, PaddingZerosAndUnrepresentableWeights) {
  std::mt19937 rng(12);
  auto w = make_q8(DType::kF32, 3, 40, rng, 1.0f, QuantFormat::kQ4);
  for (int64_t c = 0; c < 40; ++c) w->f32[static_cast<size_t>(1 * 40 + c)] = 0.0f;
  ASSERT_EQ(
      quantize_weights(w->view, QuantFormat::kQ4, const_cast<uint8_t*>(w->q8.qs), const_cast<uint16_t*>(w->q8.scales)),
      "");
  for (int64_t c = 0; c < 64; ++c) EXPECT_EQ(q8_weight(w->q8, 1, c), 0.0f);
  for (int64_t j = 3; j < 16; ++j)
    for (int64_t c = 0; c < 64; ++c) EXPECT_EQ(q8_weight(w->q8, j, c), 0.0f) << "padding row " << j;
  for (int64_t c = 40; c < 64; ++c) EXPECT_EQ(q8_weight(w->q8, 0, c), 0.0f) << "padding column " << c;
  // The nibble layout: column c in the low nibble and c + 16 in the high one of one byte.
  w->f32.assign(w->f32.size(), 0.0f);
  w->f32[3] = 7.0f, w->f32[19] = -8.0f;  // row 0, block 0: d = 1 (8 steps down, 7 up)
  ASSERT_EQ(
      quantize_weights(w->view, QuantFormat::kQ4, const_cast<uint8_t*>(w->q8.qs), const_cast<uint16_t*>(w->q8.scales)),
      "");
  EXPECT_EQ(w->q8.qs[3], (7 + 8) | (-8 + 8) << 4);
  EXPECT_EQ(block_scale(w->q8, 0, 0), 1.0f);
  for (float bad : {NAN, INFINITY, 5e5f}) {
    w->f32[static_cast<size_t>(2 * 40 + 33)] = bad;
    const std::string error = quantize_weights(w->view, QuantFormat::kQ4, const_cast<uint8_t*>(w->q8.qs),
                                               const_cast<uint16_t*>(w->q8.scales));
    EXPECT_NE(error.find("weight [2, 33]"), std::string::npos) << error;
    EXPECT_NE(error.find("q4"), std::string::npos) << error;
  }
}

TEST(Q8Quantize, ActivationRowsRoundToNearestWithinHalfAScale) {
  std::mt19937 rng(4);
  const std::vector<float> x = random_floats(70, rng);
  std::vector<int8_t> q(96);
  std::vector<float> d(3);
  std::vector<int32_t> sum(3);
  quantize_row_q8(x.data(), 70, q.data(), d.data(), sum.data());
  for (int64_t c = 0; c < 96; ++c) {
    if (c >= 70) {
      EXPECT_EQ(q[static_cast<size_t>(c)], 0) << "padding";
      continue;
    }
    EXPECT_LE(std::fabs(q[static_cast<size_t>(c)] * d[static_cast<size_t>(c / 32)] - x[static_cast<size_t>(c)]),
              d[static_cast<size_t>(c / 32)] / 2 * (1 + 1e-5f));
  }
  for (int b = 0; b < 3; ++b) {
    int32_t s = 0;
    for (int c = 0; c < 32; ++c) s += q[static_cast<size_t>(b * 32 + c)];
    EXPECT_EQ(sum[static_cast<size_t>(b)], s);
  }
}

struct Shape {
  int64_t m, n, k;
};
// Tails of every kind (n not a multiple of 16, k not a multiple of 32, chunk remainders), row
// groups of the batched tiles, and sizes that run on several threads.
const Shape kShapes[] = {{1, 1, 1},      {1, 16, 32},    {1, 37, 100},   {2, 48, 64},   {3, 50, 257},
                         {4, 64, 256},   {5, 17, 300},   {8, 33, 96},    {9, 100, 520}, {17, 64, 1000},
                         {1, 300, 2048}, {1, 1000, 777}, {33, 130, 515}, {70, 97, 1030}};

const QuantFormat kFormats[] = {QuantFormat::kQ8, QuantFormat::kQ4};

class Q8LinearTest : public ForcedIsaTest {};

TEST_P(Q8LinearTest, MatchesTheDoubleReferenceOfTheQuantisedOperands) {
  uint32_t seed = 100;
  for (QuantFormat f : kFormats)
    for (const Shape& s : kShapes) {
      for (bool with_bias : {false, true}) {
        std::mt19937 rng(seed++);
        const auto w = make_q8(DType::kBF16, s.n, s.k, rng, 1.0f, f);
        const std::vector<float> x = random_floats(s.m * s.k, rng), bias = random_floats(s.n, rng);
        const float* b = with_bias ? bias.data() : nullptr;
        std::vector<float> y(static_cast<size_t>(s.m * s.n), NAN), ref(y.size(), NAN);
        linear_q8(x.data(), s.m, w->q8, b, y.data());
        linear_q8_reference(x.data(), s.m, w->q8, b, ref.data());
        // Float32 sums only: one rounding per block (the fma) and per scale product, one per
        // chunk. Relative to sum |terms| (which the oracle's quantised x gives).
        const int64_t blocks = q8_blocks(s.k);
        std::vector<int8_t> xq(static_cast<size_t>(blocks * kQ8Block));
        std::vector<float> xd(static_cast<size_t>(blocks));
        std::vector<int32_t> xs(static_cast<size_t>(blocks));
        const double tol = static_cast<double>(2 * blocks + 4) * std::ldexp(1.0, -24);
        int failures = 0;
        for (int64_t i = 0; i < s.m && failures < 5; ++i) {
          quantize_row_q8(&x[static_cast<size_t>(i * s.k)], s.k, xq.data(), xd.data(), xs.data());
          for (int64_t j = 0; j < s.n && failures < 5; ++j) {
            double magnitude = b ? std::fabs(b[j]) : 0.0;
            for (int64_t c = 0; c < s.k; ++c)
              magnitude += std::fabs(double{q8_weight(w->q8, j, c)} * xq[static_cast<size_t>(c)] *
                                     xd[static_cast<size_t>(c / 32)]);
            const size_t at = static_cast<size_t>(i * s.n + j);
            if (!(std::fabs(double{y[at]} - ref[at]) <= tol * magnitude + 1e-30)) {
              ADD_FAILURE() << quant_format_name(f) << " m=" << s.m << " n=" << s.n << " k=" << s.k << " y[" << i << ","
                            << j << "] = " << y[at] << ", reference " << ref[at] << ", allowed " << tol * magnitude;
              ++failures;
            }
          }
        }
      }
    }
}

// kernels/q8.h's bound against float32 x times the original weights: the activations'
// rounding (dx/2 per element, against the dequantised weights) plus the weights' (dw/2 per
// element, against |x|), plus float32 sums.
TEST_P(Q8LinearTest, StaysWithinTheStatedBoundOfTheUnquantisedProduct) {
  uint32_t seed = 200;
  for (QuantFormat f : kFormats) {
    double worst_ratio = 0, typical = 0;
    int64_t count = 0;
    for (const Shape& s : kShapes) {
      std::mt19937 rng(seed++);
      const auto w = make_q8(DType::kF32, s.n, s.k, rng, 1.0f, f);
      const std::vector<float> x = random_floats(s.m * s.k, rng);
      std::vector<float> y(static_cast<size_t>(s.m * s.n));
      linear_q8(x.data(), s.m, w->q8, nullptr, y.data());
      const int64_t blocks = q8_blocks(s.k);
      std::vector<int8_t> xq(static_cast<size_t>(blocks * kQ8Block));
      std::vector<float> xd(static_cast<size_t>(blocks));
      std::vector<int32_t> xs(static_cast<size_t>(blocks));
      for (int64_t i = 0; i < s.m; ++i) {
        quantize_row_q8(&x[static_cast<size_t>(i * s.k)], s.k, xq.data(), xd.data(), xs.data());
        for (int64_t j = 0; j < s.n; ++j) {
          double exact = 0, bound = 0, magnitude = 0;
          for (int64_t c = 0; c < s.k; ++c) {
            const double xc = x[static_cast<size_t>(i * s.k + c)], wc = w->f32[static_cast<size_t>(j * s.k + c)];
            const double wq = q8_weight(w->q8, j, c);
            exact += xc * wc;
            magnitude += std::fabs(xc * wc);
            bound += xd[static_cast<size_t>(c / 32)] / 2 * std::fabs(wq) +
                     std::fabs(block_scale(w->q8, j, c / 32)) / 2 * std::fabs(xc);
          }
          bound += 1e-5 * magnitude;
          const double err = std::fabs(y[static_cast<size_t>(i * s.n + j)] - exact);
          ASSERT_LE(err, bound) << quant_format_name(f) << " m=" << s.m << " n=" << s.n << " k=" << s.k << " [" << i
                                << ", " << j << "]";
          worst_ratio = std::max(worst_ratio, err / bound);
          typical += err / (magnitude + 1e-30);
          ++count;
        }
      }
    }
    std::printf("[ %s ] |%s - f32| <= %.2f of the bound; mean |%s - f32| / sum|x·w| = %.2e\n", isa_name(GetParam()),
                quant_format_name(f), worst_ratio, quant_format_name(f), typical / static_cast<double>(count));
  }
}

// Every ISA computes the same float operations in the same order (kernels/q8.h): bitwise equal
// to the scalar form, and a row alone equals the same row inside a batch, wherever it sits.
TEST_P(Q8LinearTest, BitwiseEqualToScalarAndIndependentOfTheBatch) {
  uint32_t seed = 300;
  for (QuantFormat f : kFormats)
    for (const Shape& s : kShapes) {
      std::mt19937 rng(seed++);
      const auto w = make_q8(DType::kBF16, s.n, s.k, rng, 1.0f, f);
      const std::vector<float> x = random_floats(s.m * s.k, rng), bias = random_floats(s.n, rng);
      std::vector<float> y(static_cast<size_t>(s.m * s.n)), scalar(y.size());
      linear_q8(x.data(), s.m, w->q8, bias.data(), y.data());
      set_active_isa(Isa::kScalar);
      linear_q8(x.data(), s.m, w->q8, bias.data(), scalar.data());
      set_active_isa(GetParam());
      ASSERT_EQ(std::memcmp(y.data(), scalar.data(), y.size() * sizeof(float)), 0)
          << linear_q8_isa() << " vs scalar, " << quant_format_name(f) << " m=" << s.m << " n=" << s.n << " k=" << s.k;
      for (int64_t i : {int64_t{0}, s.m / 2, s.m - 1}) {
        std::vector<float> alone(static_cast<size_t>(s.n));
        linear_q8(&x[static_cast<size_t>(i * s.k)], 1, w->q8, bias.data(), alone.data());
        ASSERT_EQ(std::memcmp(alone.data(), &y[static_cast<size_t>(i * s.n)], alone.size() * sizeof(float)), 0)
            << quant_format_name(f) << " row " << i << " of m=" << s.m << " n=" << s.n << " k=" << s.k;
      }
    }
}

TEST_P(Q8LinearTest, ReportsItsImplementationAndZeroInnerDimensionGivesBias) {
  const std::string name = linear_q8_isa();
  const std::string expected = GetParam() == Isa::kScalar ? "scalar"
                               : GetParam() == Isa::kAvx2 ? "avx2"
                                                          : "avx512_vnni";
  EXPECT_TRUE(name == expected || (expected == "avx512_vnni" && name == "avx2")) << name;
  const Q8Matrix w{nullptr, nullptr, 3, 0};
  const float bias[3] = {1, 2, 3};
  float y[6] = {};
  linear_q8(nullptr, 2, w, bias, y);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(y[i], bias[i % 3]);
}

INSTANTIATE_TEST_SUITE_P(AllIsas, Q8LinearTest, testing::ValuesIn(isas_on_this_cpu()), isa_param_name);

}  // namespace
}  // namespace hotswap::kernels
