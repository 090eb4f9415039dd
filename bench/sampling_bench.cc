// Sampling time per token for one sequence at Llama-3 vocab size (128256). Each iteration
// copies a fresh raw logits row (sample() overwrites its input, as the engine's fresh
// forward output would be) and samples one token; BM_CopyRow is that copy alone, so the
// sampling cost is the difference. Reported: time per token (= per iteration).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>
#include <span>
#include <vector>

#include "sampling/sampler.h"

namespace hotswap {
namespace {

constexpr size_t kVocab = 128256;

// Roughly LLM-shaped: a broad normal body plus a handful of strong candidates.
const std::vector<float>& raw_logits() {
  static const std::vector<float> logits = [] {
    std::mt19937 gen(1234);
    std::normal_distribution<float> body(0.0f, 2.5f);
    std::vector<float> row(kVocab);
    for (float& v : row) v = body(gen);
    std::uniform_int_distribution<size_t> pick(0, kVocab - 1);
    for (int i = 0; i < 20; ++i) row[pick(gen)] = 14.0f + static_cast<float>(i) * 0.3f;
    return row;
  }();
  return logits;
}

const std::vector<int32_t>& history(size_t n) {
  static std::vector<int32_t> ids;
  if (ids.size() != n) {
    std::mt19937 gen(7);
    std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(kVocab) - 1);
    ids.resize(n);
    for (int32_t& id : ids) id = pick(gen);
  }
  return ids;
}

void run_sampler(benchmark::State& state, const SamplingParams& params, size_t history_len = 0) {
  Sampler sampler(params, 42);
  const std::vector<float>& raw = raw_logits();
  const std::vector<int32_t>& ids = history(history_len);
  const std::span<const int32_t> prompt(ids.data(), ids.size() / 2);
  const std::span<const int32_t> output(ids.data() + ids.size() / 2, ids.size() - ids.size() / 2);
  std::vector<float> row(kVocab);
  for (auto _ : state) {
    std::copy(raw.begin(), raw.end(), row.begin());
    benchmark::DoNotOptimize(sampler.sample(row, prompt, output));
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_CopyRow(benchmark::State& state) {
  const std::vector<float>& raw = raw_logits();
  std::vector<float> row(kVocab);
  for (auto _ : state) {
    std::copy(raw.begin(), raw.end(), row.begin());
    benchmark::DoNotOptimize(row.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Greedy(benchmark::State& state) {
  SamplingParams p;
  p.temperature = 0.0f;
  run_sampler(state, p);
}

void BM_TopK50TopP09(benchmark::State& state) {
  SamplingParams p;
  p.temperature = 0.7f;
  p.top_k = 50;
  p.top_p = 0.9f;
  run_sampler(state, p);
}

void BM_TopP09(benchmark::State& state) {
  SamplingParams p;
  p.temperature = 0.7f;
  p.top_p = 0.9f;
  run_sampler(state, p);
}

void BM_Temperature(benchmark::State& state) {
  SamplingParams p;
  p.temperature = 1.0f;
  run_sampler(state, p);
}

// All three penalties over a 4096-token history (2048 prompt + 2048 output), then top-p.
void BM_PenaltiesTopP09(benchmark::State& state) {
  SamplingParams p;
  p.temperature = 0.7f;
  p.top_p = 0.9f;
  p.repetition_penalty = 1.1f;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.5f;
  run_sampler(state, p, 4096);
}

void BM_Logprobs5(benchmark::State& state) {
  const std::vector<float>& raw = raw_logits();
  for (auto _ : state) benchmark::DoNotOptimize(compute_logprobs(raw, 17, 5));
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_CopyRow);
BENCHMARK(BM_Greedy);
BENCHMARK(BM_TopK50TopP09);
BENCHMARK(BM_TopP09);
BENCHMARK(BM_Temperature);
BENCHMARK(BM_PenaltiesTopP09);
BENCHMARK(BM_Logprobs5);

}  // namespace
}  // namespace hotswap

BENCHMARK_MAIN();
