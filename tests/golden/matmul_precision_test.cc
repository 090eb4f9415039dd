// MatmulPrecision::kBf16 (what `auto`, the engine's default, picks for BF16 checkpoints:
// activations rounded to bf16, vdpbf16ps in batched steps) is held to
// a logit tolerance against the float32 path and transformers' reference (float32 compute of
// the stored bf16 weights), on the tiny bf16 models, with every position of 17- and 300-token
// prompts run through the bf16 products (m >= 16). These random models (initializer range 0.2)
// amplify rounding far more than trained ones: greedy continuations drift apart after a few
// tokens, as they would between transformers in bf16 and in float32, so the test bounds the
// logits and the share of positions whose argmax is unchanged instead. A broken kernel (wrong
// pairing, lost tail) moves logits by O(1) and fails it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "golden_fixture.h"
#include "kernels/isa.h"
#include "kernels/linear.h"
#include "model/model.h"
#include "runner/sequence_session.h"

namespace hotswap {
namespace {

using testing::GoldenModel;

int argmax(const float* row, int n) { return static_cast<int>(std::max_element(row, row + n) - row); }

// Restores the process-wide precision when a test ends, however it ends.
class MatmulPrecisionBf16 : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!kernels::cpu_has_avx512_bf16()) GTEST_SKIP() << "CPU without AVX512_BF16: kBf16 falls back to f32";
  }
  void TearDown() override { kernels::set_linear_precision(kernels::LinearPrecision::kF32); }
};

std::vector<float> all_logits(const Model& model, const std::vector<int32_t>& ids) {
  SequenceSession session(model, static_cast<int>(ids.size()));
  return session.append(ids, /*all_positions=*/true);
}

TEST_P(MatmulPrecisionBf16, LogitsStayWithinToleranceOfF32AndTheReference) {
  const GoldenModel g = testing::load_golden_model(GetParam());
  auto model = Model::load(g.dir);
  const int V = model->config().vocab_size;
  for (const auto& p : g.prompts) {
    if (p.ids.size() < static_cast<size_t>(kernels::kBf16DotMinRows)) continue;  // f32 path either way
    kernels::set_linear_precision(kernels::LinearPrecision::kF32);
    const std::vector<float> exact = all_logits(*model, p.ids);
    kernels::set_linear_precision(kernels::LinearPrecision::kBf16Dot);
    const std::vector<float> bf16 = all_logits(*model, p.ids);
    ASSERT_EQ(bf16.size(), p.logits.size());
    float diff_f32 = 0, diff_ref = 0, scale = 0;
    int argmax_agree = 0;
    for (size_t i = 0; i < bf16.size(); ++i) {
      diff_f32 = std::max(diff_f32, std::fabs(bf16[i] - exact[i]));
      diff_ref = std::max(diff_ref, std::fabs(bf16[i] - p.logits[i]));
      scale = std::max(scale, std::fabs(p.logits[i]));
    }
    EXPECT_GT(diff_f32, 0.0f) << "the bf16 products were not used";
    for (size_t pos = 0; pos < p.ids.size(); ++pos)
      argmax_agree += argmax(&bf16[pos * V], V) == argmax(&p.logits[pos * V], V);
    // bf16 rounding of activations: 2^-9 relative per element, compounded over the layers
    // (measured: up to 2.5e-2 of the largest logit at 300 tokens).
    EXPECT_LT(diff_f32 / scale, 5e-2f) << p.ids.size() << "-token prompt";
    EXPECT_LT(diff_ref / scale, 5e-2f) << p.ids.size() << "-token prompt";
    EXPECT_GE(argmax_agree, static_cast<int>(p.ids.size()) * 95 / 100) << p.ids.size() << "-token prompt";
    std::printf("[ %s, %zu tokens ] max |bf16 - f32| / max |logit| = %.4f, vs reference %.4f, argmax agrees at %d of %zu\n",
                GetParam().c_str(), p.ids.size(), diff_f32 / scale, diff_ref / scale, argmax_agree, p.ids.size());
  }
}

std::vector<std::string> bf16_models() {
  std::vector<std::string> names;
  for (const std::string& n : testing::golden_model_names())
    if (n.ends_with("_bf16")) names.push_back(n);
  return names;
}

INSTANTIATE_TEST_SUITE_P(TinyBf16Models, MatmulPrecisionBf16, ::testing::ValuesIn(bf16_models()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace hotswap
