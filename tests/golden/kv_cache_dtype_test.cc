// The bf16 KV cache (engine.kv_cache_dtype = bf16) against the float32 one on the tiny
// reference models: every K/V element is rounded to bf16 (2^-9 relative) when written, and the
// attention kernels read those bf16 rows directly. Logits of every prompt position must stay
// within a stated bound of the float32-KV logits (with float32 projections, so the KV rounding
// is the only difference) and nearly every position's argmax must agree. A kernel that misreads
// the bf16 rows (wrong stride, lost tail, float32 read of bf16 bytes) moves logits by O(1) and
// fails. Greedy continuations are measured, not required to match: these random models
// (initializer range 0.2) amplify rounding, and like bf16 matmuls (matmul_precision_test.cc)
// the bf16 cache makes their 40-token continuations drift apart after 5 to 40 tokens
// (measured on AVX-512: first divergence at token 5 for qwen2's 300-token prompt, 17-18 for the
// 5-token prompts of llama_bf16 and phi3; all 40 tokens identical in 5 of the 14 cases). Only
// the first token, which the prompt's own logits decide, must agree.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "golden_fixture.h"
#include "kernels/linear.h"
#include "model/model.h"
#include "runner/sequence_session.h"

namespace hotswap {
namespace {

using testing::GoldenModel;

// Stated bound on max |logit(bf16 KV) - logit(f32 KV)| / max |logit(f32 KV)| over every position
// of the fixtures' 1-, 17- and 300-token prompts (measured worst 2.7e-2: qwen2_f32, 300 tokens).
constexpr float kKvBf16LogitBound = 5e-2f;

int argmax(const float* row, int n) { return static_cast<int>(std::max_element(row, row + n) - row); }

std::vector<float> all_logits(const Model& model, const std::vector<int32_t>& ids, KvDtype dtype) {
  SequenceSession session(model, static_cast<int>(ids.size()), nullptr, 16, dtype);
  return session.append(ids, /*all_positions=*/true);
}

std::vector<int32_t> greedy(const Model& model, const std::vector<int32_t>& prompt, size_t n, KvDtype dtype) {
  SequenceSession session(model, static_cast<int>(prompt.size() + n), nullptr, 16, dtype);
  const int V = model.config().vocab_size;
  std::vector<float> logits = session.append(prompt, false);
  std::vector<int32_t> out;
  while (out.size() < n) {
    out.push_back(argmax(logits.data(), V));
    logits = session.append(std::span<const int32_t>(&out.back(), 1), false);
  }
  return out;
}

class KvCacheBf16 : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { kernels::set_linear_precision(kernels::LinearPrecision::kF32); }
};

TEST_P(KvCacheBf16, LogitsWithinBoundOfF32KvAndGreedyMeasured) {
  const GoldenModel g = testing::load_golden_model(GetParam());
  auto model = Model::load(g.dir);
  const int V = model->config().vocab_size;
  for (const auto& p : g.prompts) {
    const std::vector<float> f32 = all_logits(*model, p.ids, KvDtype::kF32);
    const std::vector<float> bf16 = all_logits(*model, p.ids, KvDtype::kBf16);
    ASSERT_EQ(bf16.size(), f32.size());
    float diff = 0, scale = 0;
    int argmax_agree = 0;
    for (size_t i = 0; i < f32.size(); ++i) {
      diff = std::max(diff, std::fabs(bf16[i] - f32[i]));
      scale = std::max(scale, std::fabs(f32[i]));
    }
    for (size_t pos = 0; pos < p.ids.size(); ++pos) argmax_agree += argmax(&bf16[pos * V], V) == argmax(&f32[pos * V], V);
    // The first position attends only its own (rounded) key and value: it differs too.
    EXPECT_GT(diff, 0.0f) << "the bf16 cache was not used";
    // bf16 K/V: 2^-9 relative per element, through every layer's attention (see the printout).
    EXPECT_LT(diff / scale, kKvBf16LogitBound) << p.ids.size() << "-token prompt";
    EXPECT_GE(argmax_agree, static_cast<int>(p.ids.size()) * 95 / 100) << p.ids.size() << "-token prompt";
    std::printf("[ %s, %zu tokens ] max |bf16 KV - f32 KV| / max |logit| = %.5f, argmax agrees at %d of %zu\n",
                GetParam().c_str(), p.ids.size(), diff / scale, argmax_agree, p.ids.size());
  }
  for (const auto& c : g.greedy) {
    const std::vector<int32_t> f32 = greedy(*model, c.prompt_ids, c.output_ids.size(), KvDtype::kF32);
    const std::vector<int32_t> bf16 = greedy(*model, c.prompt_ids, c.output_ids.size(), KvDtype::kBf16);
    size_t same = 0;
    while (same < f32.size() && f32[same] == bf16[same]) ++same;
    EXPECT_GE(same, 1u) << "the first generated token differs";
    std::printf("[ %s ] greedy %zu-token prompt: bf16 KV agrees with f32 KV for %zu of %zu tokens\n",
                GetParam().c_str(), c.prompt_ids.size(), same, f32.size());
  }
}

INSTANTIATE_TEST_SUITE_P(TinyModels, KvCacheBf16, ::testing::ValuesIn(testing::golden_model_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace hotswap
