// Batching must not change results beyond what the arithmetic allows (ARCHITECTURE.md,
// "Arithmetic"): in every projection a row's products never depend on the other rows of its
// step; only the float32 summation order may, and that order is fixed by the form the
// projection takes for the step's row count m:
//
//   precision  form (kernels/cpu/linear.cc)           summation order of one output element
//   f32        dot form, m < 8                        one FMA chain per (row, column): same for every m
//   f32        packed form, m >= 8                    same for every m >= 8
//   bf16       bf16 GEMV, m == 1                      4 vdpbf16ps chains per row
//   bf16       bf16 GEMV, 2 <= m < 8                  2 chains per row
//   bf16       blocked bf16 form, m >= 8              same for every m >= 8
//
// So, on llama_bf16 (BF16 weights, so kBf16Dot applies) and for both precisions:
//  - steps whose row counts fall in the same class give a sequence bitwise the same logits,
//    whatever the other sequences are and wherever it sits in the batch;
//  - steps in different classes differ only by float32 summation order: within a bound far
//    below what a change of products would cause (bf16 rounding of x moves these logits by
//    ~1e-2 of the largest, tests/golden/matmul_precision_test.cc).
// Attention has no row-count dependence here: every context stays below the 512 keys from
// which a decode's context is split across threads (kMinKeysPerSplit, attention/
// paged_attention.cc); a split context is merged within float32 rounding, not bitwise, and
// is tested against the reference kernel in tests/unit/attention.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <ostream>
#include <string>

#include "golden_fixture.h"
#include "kernels/isa.h"
#include "kernels/linear.h"
#include "kv_cache/block_pool.h"
#include "model/model.h"

namespace hotswap {
namespace kernels {
// Names the test parameter in gtest's messages.
void PrintTo(LinearPrecision p, std::ostream* os) { *os << (p == LinearPrecision::kF32 ? "kF32" : "kBf16Dot"); }
}  // namespace kernels
namespace {

struct SeqState {
  std::vector<int32_t> tokens;
  std::vector<int32_t> blocks;
};

// Runs `chunks` (sequence index, first token, count) in one step over a shared storage.
Logits step(const Model& model, KvStorage& kv, std::vector<SeqState>& seqs,
            const std::vector<std::array<int, 3>>& chunks, Workspace& ws, LogitsWanted wanted = LogitsWanted::kAll) {
  ForwardBatch batch;
  for (const auto& [s, first, count] : chunks) {
    SequenceChunk c;
    c.tokens = std::span<const int32_t>(seqs[s].tokens).subspan(first, count);
    c.first_position = first;
    c.block_table = seqs[s].blocks;
    c.logits = wanted;
    batch.chunks.push_back(c);
  }
  return model.forward(batch, kv, ws);
}

// `n` sequences of `len` tokens each (distinct contents) with disjoint blocks of `bs` slots.
std::vector<SeqState> make_sequences(int n, int len, int bs, int vocab) {
  std::vector<SeqState> seqs(static_cast<size_t>(n));
  int next_block = 0;
  for (int s = 0; s < n; ++s) {
    for (int i = 0; i < len; ++i) seqs[s].tokens.push_back((i * 37 + s * 11 + 5) % vocab);
    for (int b = 0; b < (len + bs - 1) / bs; ++b) seqs[s].blocks.push_back(next_block++);
  }
  return seqs;
}

// Restores the process-wide precision however the test ends.
class BatchInvariance : public ::testing::TestWithParam<kernels::LinearPrecision> {
 protected:
  void SetUp() override {
    if (GetParam() == kernels::LinearPrecision::kBf16Dot && !kernels::cpu_has_avx512_bf16())
      GTEST_SKIP() << "CPU without AVX512_BF16: kBf16Dot computes exactly as kF32";
    kernels::set_linear_precision(GetParam());
  }
  void TearDown() override { kernels::set_linear_precision(kernels::LinearPrecision::kF32); }
  bool bf16() const { return GetParam() == kernels::LinearPrecision::kBf16Dot; }

  // Which summation order (table above) a projection over m rows takes.
  int summation_class(int m) const {
    if (m >= kernels::kBf16DotMinRows) return 2;
    return bf16() && m >= 2 ? 1 : 0;
  }
};

// The whole prompt in one 70-row step vs. chunks of 7, 20 and 43 positions, each beside two
// other sequences' chunks (21, 60 and 129 rows): all at least 8 rows, so one class: bitwise.
TEST_P(BatchInvariance, PrefillLogitsDoNotDependOnBatchCompositionOrChunking) {
  auto model = Model::load(testing::golden_dir() + "/models/llama_bf16");
  const int V = model->config().vocab_size, bs = 16, len = 70;
  KvStorage kv(model->kv_layout(bs, 64));
  std::vector<SeqState> seqs = make_sequences(3, len, bs, V);
  Workspace ws;
  const Logits alone = step(*model, kv, seqs, {{0, 0, len}}, ws);
  std::vector<float> batched;
  const int cuts[] = {0, 7, 27, len};
  for (int k = 0; k < 3; ++k) {
    const int first = cuts[k], count = cuts[k + 1] - cuts[k];
    ASSERT_EQ(summation_class(3 * count), summation_class(len));
    const Logits l = step(*model, kv, seqs, {{1, first, count}, {0, first, count}, {2, first, count}}, ws);
    const float* rows = l.row(l.first_row[1]);
    batched.insert(batched.end(), rows, rows + static_cast<size_t>(count) * V);
  }
  ASSERT_EQ(batched.size(), alone.data.size());
  for (size_t i = 0; i < batched.size(); ++i)
    ASSERT_EQ(batched[i], alone.data[i]) << "position " << i / V << " token " << i % V;
}

// Decode: 12 sequences prefilled alone (identical KV in every run), then kDecodeSteps decode
// steps of one token each in batches of b sequences, for b from 1 to 12, with sequence 0
// first, in the middle or last. Sequence 0's logits at every decode step:
//  - bitwise equal between batches of the same summation class;
//  - between classes, max |difference| / max |logit| below kCrossClassTolerance.
TEST_P(BatchInvariance, DecodeLogitsDependOnlyOnTheSummationClassOfTheBatchSize) {
  auto model = Model::load(testing::golden_dir() + "/models/llama_bf16");
  const int V = model->config().vocab_size, bs = 16, prompt = 40, kDecodeSteps = 4, kSeqs = 12;
  const int len = prompt + kDecodeSteps;
  // Measured between classes (AVX-512 with AVX512_BF16, 2 OpenMP threads), max |difference|
  // / max |logit| over the 4 decode steps: f32 1.74e-6 (dot vs packed form), bf16 8.65e-8
  // (each pair of GEMV m == 1, GEMV m >= 2, blocked form). Bounds: about 6x those. The bf16
  // bound is 1e4 times below the ~1e-2 that multiplying x unrounded in one form (a change of
  // products, not of summation order) causes (tests/golden/matmul_precision_test.cc).
  const double kCrossClassTolerance = bf16() ? 5e-7 : 1e-5;

  struct Run {
    int batch;
    int position;  // where sequence 0 sits in the batch
    std::vector<float> logits;  // [kDecodeSteps, V]
  };
  std::vector<Run> runs;
  for (int b = 1; b <= kSeqs; ++b) {
    std::vector<int> positions = {0};
    if (b > 2) positions.push_back(b / 2);
    if (b > 1) positions.push_back(b - 1);
    for (int at : positions) {
      KvStorage kv(model->kv_layout(bs, 64));
      std::vector<SeqState> seqs = make_sequences(kSeqs, len, bs, V);
      Workspace ws;
      for (int s = 0; s < kSeqs; ++s) step(*model, kv, seqs, {{s, 0, prompt}}, ws, LogitsWanted::kLast);
      // Batch order: sequences 1..b-1, with sequence 0 inserted at `at`.
      std::vector<int> order(static_cast<size_t>(b - 1));
      std::iota(order.begin(), order.end(), 1);
      order.insert(order.begin() + at, 0);
      Run run{b, at, {}};
      for (int t = prompt; t < len; ++t) {
        std::vector<std::array<int, 3>> chunks;
        for (int s : order) chunks.push_back({s, t, 1});
        const Logits l = step(*model, kv, seqs, chunks, ws, LogitsWanted::kLast);
        ASSERT_EQ(l.num_rows(), b);
        const float* row = l.row(l.first_row[static_cast<size_t>(at)]);
        run.logits.insert(run.logits.end(), row, row + V);
      }
      runs.push_back(std::move(run));
    }
  }

  struct Worst {
    double rel = 0;
    std::string where;
  };
  std::map<std::pair<int, int>, Worst> worst;  // (class, class) -> largest relative difference
  for (const Run& r : runs) {
    for (const Run& base : runs) {
      if (&r == &base) continue;
      const int ca = summation_class(r.batch), cb = summation_class(base.batch);
      const std::string where = "batch of " + std::to_string(r.batch) + " (sequence 0 at " +
                                std::to_string(r.position) + ") vs batch of " + std::to_string(base.batch) + " (at " +
                                std::to_string(base.position) + ")";
      if (ca == cb) {
        ASSERT_EQ(r.logits, base.logits) << where << ": same summation class " << ca << ", must be bitwise equal";
        continue;
      }
      double diff = 0, scale = 0;
      for (size_t i = 0; i < r.logits.size(); ++i) {
        diff = std::max(diff, std::fabs(static_cast<double>(r.logits[i]) - base.logits[i]));
        scale = std::max(scale, std::fabs(static_cast<double>(base.logits[i])));
      }
      Worst& w = worst[{std::min(ca, cb), std::max(ca, cb)}];
      if (diff / scale > w.rel) w = {diff / scale, where};
    }
  }
  for (const auto& [classes, w] : worst) {
    std::printf("[ %s ] summation classes %d vs %d: max |difference| / max |logit| = %.3g\n", bf16() ? "bf16" : "f32",
                classes.first, classes.second, w.rel);
    EXPECT_LT(w.rel, kCrossClassTolerance) << "summation classes " << classes.first << " vs " << classes.second
                                           << ", worst at " << w.where;
  }
}

INSTANTIATE_TEST_SUITE_P(Precisions, BatchInvariance,
                         ::testing::Values(kernels::LinearPrecision::kF32, kernels::LinearPrecision::kBf16Dot),
                         [](const auto& info) {
                           return std::string(info.param == kernels::LinearPrecision::kF32 ? "F32" : "Bf16");
                         });

}  // namespace
}  // namespace hotswap
