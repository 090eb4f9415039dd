// The `masked` attention implementation against the reference implementation
// (sparse-attention-hub, tests/golden/masked/README.md; fixtures made by
// scripts/reference/masker_reference.py), one decode step per case under
// tests/golden/masked/decode/: the parsed masker list, the key selection (dense flag, keys and
// weights per query head), the density, the double-precision reference kernel and the serving
// sparse kernel (every ISA the CPU has), over paged caches of several block sizes whose
// physical blocks are shuffled. Sampling cases inject the reference's recorded draws through
// SelectionScratch::draw_override and also check adaptive_budget on the recorded terms.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attention_test_util.h"
#include "masked_golden_util.h"
#include "attention/masked/counter_rng.h"
#include "attention/masked/masked_reference.h"
#include "attention/masked/masker_config.h"
#include "attention/masked/select_keys.h"
#include "attention/masked/sparse_attention.h"
#include "kernels/isa.h"
#include "kv_cache/paged_kv_view.h"

namespace hotswap {
namespace {

using namespace masked_golden;

// Listed, not discovered: a case folder that goes missing fails (MaskedGoldenFixtures checks
// that index.json and the folders hold exactly these), it never silently stops running.
const std::vector<std::string>& case_names() {
  static const std::vector<std::string> names = {
      "s40_sink4_local16", "s40_local_frac1_full", "s40_sink4_local39_full", "s40_sink4_local38_all_keys",
      "s40_sink1_local1", "s40_sink_frac1_full", "s40_sink1_topk1", "s40_sink8_local30_topk10_overflow",
      "s40_sink4_local8_topk_frac_zero", "s40_topk40_full", "s40_causal_only_empty", "s40_topp1_full",
      "s40_adaptive_range1_full", "s300_topk32", "s300_topp09", "s300_sink8_local8_topp05",
      "s300_causal_sink4_local16", "s300_topk8_then_sink4_local8", "s300_sink2_local4_topp07_scaling03",
      "s300_sink4_local16_random01", "s600_sink002_local005_topk005", "s600_sink16_local32_topk002_topp07",
      "s600_sink16_local32_topk005_adaptive", "s600_adaptive_alone_frac_offsets", "s4096_sink128_local128_topk005",
      "s4096_sink4_local64_topp05", "s4096_sink128_local128_adaptive_int", "llama_f32_l1_sink4_local16",
      "llama_f32_l1_sink8_local32_topk01", "llama_f32_l1_sink2_local8_topp08", "llama_f32_l1_topk32",
      "qwen2_f32_l1_sink4_local16", "qwen2_f32_l1_sink8_local32_topk01", "qwen2_f32_l1_sink2_local8_topp08",
      "qwen2_f32_l1_topk32", "phi3_f32_l1_sink4_local16", "phi3_f32_l1_sink8_local32_topk01",
      "phi3_f32_l1_sink2_local8_topp08", "phi3_f32_l1_topk32", "llama_f32_l0_sink002_local005_topk005",
      // the summarising maskers (README section C; scripts/reference/research_masker_reference.py)
      "s40_hat40_full", "s40_sink4_local8_hat8_b16_relu", "s300_hat_k32_b32_silu", "s300_sink8_local16_hat01_b16_gelu",
      "s600_sink16_local32_hat005_b32_tanh", "s4096_sink128_local128_hat01_b32_silu", "s40_sink4_local8_mp_l8k4",
      "s40_mp_l32k2", "s300_mp_l8k8", "s300_sink4_local16_mp_l4k4", "s600_sink16_local32_mp_l16k4",
      "s600_mp_l8k4_nocenter", "s600_sink16_local32_mp_l8k8_nocenter", "s4096_sink128_local128_mp_l8k8",
      "s40_quest8_ps32_two_pages", "s40_sink4_local8_quest12_ps4", "s300_quest32_ps8", "s300_quest01_ps16",
      "s300_sink4_local16_quest64_ps4_label8", "s600_sink16_local32_quest005_ps32", "s600_quest128_ps16",
      "s4096_quest512_ps64", "s4096_sink128_local128_quest005_ps32", "llama_f32_l1_sink4_local16_hat01_b32_silu",
      "llama_f32_l1_sink4_local16_mp_l8k4", "llama_f32_l1_mp_l16k4", "llama_f32_l1_quest32_ps8",
      "llama_f32_l1_sink4_local8_quest025_ps16", "qwen2_f32_l1_sink4_local16_hat01_b32_silu",
      "qwen2_f32_l1_sink4_local16_mp_l8k4", "qwen2_f32_l1_mp_l16k4", "qwen2_f32_l1_quest32_ps8",
      "qwen2_f32_l1_sink4_local8_quest025_ps16", "phi3_f32_l1_sink4_local16_hat01_b32_silu",
      "phi3_f32_l1_sink4_local16_mp_l8k4", "phi3_f32_l1_mp_l16k4", "phi3_f32_l1_quest32_ps8",
      "phi3_f32_l1_sink4_local8_quest025_ps16", "phi3_f32_l1_hat32_b16_gelu",
      "qwen2_f32_l1_sink4_local16_hat01_b64_1layer", "llama_f32_l0_sink8_local16_hat005_b32_relu",
      "llama_f32_l0_sink4_local16_mp_l16k4", "llama_f32_l0_quest48_ps16"};
  return names;
}

}  // namespace

// The cases with a summarising masker (masked_summarising_golden_test.cc checks their scores,
// page bounds, key mean and max norm as well).
std::vector<std::string> summarising_case_names() {
  std::vector<std::string> names;
  for (const std::string& n : case_names())
    if (n.find("hat") != std::string::npos || n.find("_mp_") != std::string::npos || n.find("quest") != std::string::npos)
      names.push_back(n);
  return names;
}

namespace {

// The cases whose adaptive sampling masker ran (recorded draws and budget terms).
const std::vector<std::string>& adaptive_case_names() {
  static const std::vector<std::string> names = {"s600_sink16_local32_topk005_adaptive",
                                                 "s600_adaptive_alone_frac_offsets",
                                                 "s4096_sink128_local128_adaptive_int"};
  return names;
}

std::vector<std::vector<int32_t>> int_rows(const json& j) { return j.get<std::vector<std::vector<int32_t>>>(); }

// Injects the fixture's recorded draws (README "Sampling cases"): random_sampling's draws[h]
// on stream kRandomSampling; adaptive's base_draws[h] (nb of them, stream kAdaptiveBase, only
// for sigma and D-hat) and draws[h] (budget[h] of them, stream kAdaptiveBudget, merged).
// Every call is checked against what the reference drew: stream, count and range.
std::function<void(int, masked::RngStream, int64_t, int64_t, int64_t, int32_t*)> injector(const DecodeCase& c,
                                                                                          int* calls) {
  const json& meta = c.meta;
  const std::string name = c.name;
  if (!meta.contains("sampling")) {
    return [name](int head, masked::RngStream stream, int64_t count, int64_t lo, int64_t, int32_t* out) {
      ADD_FAILURE() << name << ": a case without sampling drew " << count << " keys (head " << head << ", stream "
                    << static_cast<int>(stream) << ")";
      std::fill_n(out, count, static_cast<int32_t>(lo));
    };
  }
  const json& s = meta.at("sampling");
  const std::string kind = s.at("kind").get<std::string>();
  const int sk = c.sk;
  if (kind == "random_sampling") {
    auto draws = int_rows(s.at("draws"));
    return [name, draws, sk, calls](int head, masked::RngStream stream, int64_t count, int64_t lo, int64_t hi,
                                    int32_t* out) {
      ++*calls;
      const auto& row = draws.at(static_cast<size_t>(head));
      const bool ok = stream == masked::RngStream::kRandomSampling && count == static_cast<int64_t>(row.size()) &&
                      lo == 0 && hi == sk;
      EXPECT_TRUE(ok) << name << " head " << head << ": asked for " << count << " draws in [" << lo << ", " << hi
                      << ") on stream " << static_cast<int>(stream) << ", the reference drew " << row.size()
                      << " in [0, " << sk << ")";
      for (int64_t i = 0; i < count; ++i) out[i] = ok ? row[static_cast<size_t>(i)] : static_cast<int32_t>(lo);
    };
  }
  auto base = int_rows(s.at("base_draws"));
  auto draws = int_rows(s.at("draws"));
  const int64_t start = s.at("start").get<int64_t>(), end = s.at("end").get<int64_t>();
  return [name, base, draws, start, end, calls](int head, masked::RngStream stream, int64_t count, int64_t lo,
                                                int64_t hi, int32_t* out) {
    ++*calls;
    const bool is_base = stream == masked::RngStream::kAdaptiveBase;
    const bool known = is_base || stream == masked::RngStream::kAdaptiveBudget;
    const auto& row = (is_base ? base : draws).at(static_cast<size_t>(head));
    const bool ok = known && count == static_cast<int64_t>(row.size()) && lo == start && hi == end;
    EXPECT_TRUE(ok) << name << " head " << head << (is_base ? " base sample" : " adaptive sample") << ": asked for "
                    << count << " draws in [" << lo << ", " << hi << ") on stream " << static_cast<int>(stream)
                    << ", the reference drew " << row.size() << " in [" << start << ", " << end << ")";
    for (int64_t i = 0; i < count; ++i) out[i] = ok ? row[static_cast<size_t>(i)] : static_cast<int32_t>(lo);
  };
}

using hotswap::testing::IsaRestorer;
using hotswap::testing::supported_isas;

class MaskedGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(MaskedGolden, DecodeStepMatchesTheReference) {
  const DecodeCase c = load_case(GetParam());
  IsaRestorer restore;
  const std::string state = c.meta.at("mask_state").get<std::string>();
  const bool want_dense = c.meta.at("dense").get<bool>();
  ASSERT_EQ(want_dense, state != "SPARSE") << c.name;

  Result<masked::MaskedConfig> parsed = masked::parse_masked_config(c.meta.at("attention"));
  ASSERT_TRUE(parsed.is_ok()) << c.name << ": " << parsed.status().message();
  const masked::MaskedConfig& config = parsed.value();

  masked::QueryContext ctx;
  ctx.layer = c.layer;
  ctx.position = c.sk - 1;
  ctx.seed = 20240611;
  ctx.scale = static_cast<float>(c.scaling);

  double worst_ref = 0, worst_kernel = 0, worst_prob = 0, worst_dense = 0, abs_ref = 0, abs_kernel = 0;
  const int sk = c.sk;
  // 1 and 16, and one that divides none of the fixtures' key counts (40, 300, 600, 4096).
  for (const int block_size : {1, 16, 7}) {
    SCOPED_TRACE(c.name + " block_size " + std::to_string(block_size));
    const PagedCopy cache(c, block_size, /*shuffle_seed=*/static_cast<uint32_t>(block_size * 977 + sk));
    const PagedKvView& kv = cache.view();

    std::unique_ptr<CaseSummaries> summaries;
    if (std::any_of(config.maskers.begin(), config.maskers.end(),
                    [](const masked::MaskerSpec& m) { return masked::keeps_key_summaries(m.type); })) {
      summaries = case_summaries(c, config, kv);
      ctx.summaries = summaries->summaries.get();
    }
    masked::SelectionScratch scratch;
    int draw_calls = 0;
    scratch.draw_override = injector(c, &draw_calls);
    std::vector<masked::HeadSelection> sel;
    masked::select_keys(config, ctx, c.q.data(), c.H, kv, scratch, &sel);
    ASSERT_EQ(sel.size(), static_cast<size_t>(c.H));

    // Dense flag (all heads or none) and, per query head, the selected keys and weights.
    for (int h = 0; h < c.H; ++h) {
      const masked::HeadSelection& s = sel[static_cast<size_t>(h)];
      ASSERT_EQ(s.dense, want_dense) << "head " << h << " (reference mask " << state << ")";
      if (want_dense) {
        EXPECT_EQ(c.sel_ptr[h + 1], c.sel_ptr[h]) << "head " << h;
        continue;
      }
      const std::vector<int32_t> want_keys(c.sel_idx.begin() + c.sel_ptr[h], c.sel_idx.begin() + c.sel_ptr[h + 1]);
      const std::vector<float> want_w(c.sel_w.begin() + c.sel_ptr[h], c.sel_w.begin() + c.sel_ptr[h + 1]);
      ASSERT_EQ(s.keys, want_keys) << "head " << h;
      ASSERT_EQ(s.weights.size(), want_w.size()) << "head " << h;
      // Exactly: 1.0 for sink/local/top-k/top-p/hashattention/quest, and a sampled key's float32
      // rate or float32(budget / R) (clamp-added onto what earlier maskers wrote) are the same
      // float. MagicPig's collision probability (acos, pow) within 1e-6 (issue 13).
      const bool lsh = config.find(masked::MaskerType::kMagicPig) != nullptr;
      for (size_t i = 0; i < want_w.size(); ++i) {
        if (lsh)
          EXPECT_NEAR(s.weights[i], want_w[i], kLshWeightTolerance) << "head " << h << " key " << want_keys[i];
        else
          EXPECT_EQ(s.weights[i], want_w[i]) << "head " << h << " key " << want_keys[i];
      }
      const std::vector<double> p = selection_probabilities(c, h, s);
      for (size_t i = 0; i < p.size(); ++i) {
        const double e = std::fabs(p[i] - c.sel_p[static_cast<size_t>(c.sel_ptr[h]) + i]);
        worst_prob = std::max(worst_prob, e);
        EXPECT_LT(e, kProbTolerance) << "head " << h << " key " << want_keys[i];
      }
    }

    // Density: the reference's for SPARSE and FULL; for EMPTY (no masker wrote) the product
    // reports 1.0 by decision (masked_reference.h selection_density: a dense head reads every
    // key), where the reference's get_density() reports 0.
    const double density = masked::selection_density(sel, ctx.position);
    if (state == "EMPTY") {
      EXPECT_EQ(c.meta.at("density").get<double>(), 0.0);
      EXPECT_EQ(density, 1.0);
    } else {
      EXPECT_NEAR(density, c.meta.at("density").get<double>(), kDensityTolerance);
    }

    // Outputs: the double-precision reference kernel and the serving sparse kernel.
    std::vector<float> ref_out(c.out.size(), std::nanf(""));
    masked::masked_attention_reference(c.q.data(), c.H, kv, ctx, sel, ref_out.data());
    worst_ref = std::max(worst_ref, check_output(c, ref_out, c.out, "masked_attention_reference"));
    abs_ref = std::max(abs_ref, max_abs_diff(ref_out, c.out));
    std::vector<float> dense(c.out.size(), std::nanf(""));
    masked::dense_attention_reference(c.q.data(), c.H, kv, ctx, dense.data());
    worst_dense = std::max(worst_dense, check_output(c, dense, c.dense_out, "dense_attention_reference vs dense_out"));
    for (kernels::Isa isa : supported_isas()) {
      kernels::set_active_isa(isa);
      const std::vector<float> kernel_out = run_sparse_kernel(c, kv, sel, ctx.scale);
      worst_kernel = std::max(worst_kernel, check_output(c, kernel_out, c.out,
                                                         std::string("sparse_attention ") + kernels::isa_name(isa)));
      abs_kernel = std::max(abs_kernel, max_abs_diff(kernel_out, c.out));
    }

    if (c.meta.contains("sampling") && !want_dense) {
      EXPECT_GT(draw_calls, 0) << "the recorded draws were not used";
    }
  }
  std::printf("[ %-40s ] %-6s head rel err: reference kernel %.3g (abs %.3g), sparse kernel %.3g (abs %.3g), "
              "dense %.3g; |p - sel_p| %.3g\n",
              c.name.c_str(), state.c_str(), worst_ref, abs_ref, worst_kernel, abs_kernel, worst_dense, worst_prob);
}

// Adaptive sampling's budget from the recorded terms (README "Sampling cases"): e over all sk
// keys, the recorded D_static and base sample give the recorded budget and probability.
class MaskedGoldenAdaptive : public ::testing::TestWithParam<std::string> {};

TEST_P(MaskedGoldenAdaptive, AdaptiveBudgetMatchesTheRecordedBudget) {
  const DecodeCase c = load_case(GetParam());
  ASSERT_TRUE(c.meta.contains("sampling") && c.meta.at("sampling").at("kind") == "adaptive_sampling") << c.name;
  const json& s = c.meta.at("sampling");
  Result<masked::MaskedConfig> parsed = masked::parse_masked_config(c.meta.at("attention"));
  ASSERT_TRUE(parsed.is_ok()) << parsed.status().message();
  const masked::MaskerSpec& spec = parsed.value().maskers.back();
  ASSERT_EQ(spec.type, masked::MaskerType::kAdaptiveSampling);
  EXPECT_NEAR(spec.z, s.at("z").get<double>(), 1e-9);

  const masked::AdaptiveRange r = masked::adaptive_range(spec, c.sk);
  EXPECT_EQ(r.start, s.at("start").get<int64_t>());
  EXPECT_EQ(r.end, s.at("end").get<int64_t>());
  EXPECT_EQ(r.size(), s.at("range").get<int64_t>());
  EXPECT_EQ(masked::adaptive_base_count(spec, r.size()), s.at("num_base_samples").get<int64_t>());

  const auto base = int_rows(s.at("base_draws"));
  const auto d_static = s.at("static_denominator").get<std::vector<double>>();
  const auto budget = s.at("budget").get<std::vector<int64_t>>();
  const auto probability = s.at("probability").get<std::vector<double>>();
  const auto draws = int_rows(s.at("draws"));
  const int group = c.H / c.Hkv;
  for (int h = 0; h < c.H; ++h) {
    // e_j = exp(scaling q.k_j - max_i scaling q.k_i), float32, over every key.
    const int g = h / group;
    std::vector<float> e(static_cast<size_t>(c.sk));
    float mx = -std::numeric_limits<float>::infinity();
    for (int j = 0; j < c.sk; ++j) {
      double dot = 0;
      for (int x = 0; x < c.d; ++x)
        dot += static_cast<double>(c.q[static_cast<size_t>(h) * c.d + x]) *
               c.k[(static_cast<size_t>(g) * c.sk + j) * c.d + x];
      e[static_cast<size_t>(j)] = static_cast<float>(dot) * static_cast<float>(c.scaling);
      mx = std::max(mx, e[static_cast<size_t>(j)]);
    }
    for (float& x : e) x = std::exp(x - mx);
    const masked::AdaptiveBudget b =
        masked::adaptive_budget(spec, e, d_static[static_cast<size_t>(h)], r.start, r.end, base[static_cast<size_t>(h)]);
    EXPECT_EQ(b.budget, budget[static_cast<size_t>(h)]) << c.name << " head " << h;
    EXPECT_EQ(static_cast<float>(b.probability), static_cast<float>(probability[static_cast<size_t>(h)]))
        << c.name << " head " << h;
    EXPECT_EQ(static_cast<int64_t>(draws[static_cast<size_t>(h)].size()), budget[static_cast<size_t>(h)]);
  }
}

INSTANTIATE_TEST_SUITE_P(Decode, MaskedGolden, ::testing::ValuesIn(case_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });
INSTANTIATE_TEST_SUITE_P(Decode, MaskedGoldenAdaptive, ::testing::ValuesIn(adaptive_case_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

// index.json and the case folders hold exactly the listed cases (a new fixture must be listed
// to be tested; a missing one fails its test above).
TEST(MaskedGoldenFixtures, IndexAndFoldersAreExactlyTheListedCases) {
  std::vector<std::string> listed = case_names();
  std::sort(listed.begin(), listed.end());
  const json index = read_json(fs::path(decode_dir()) / "index.json");
  std::vector<std::string> indexed;
  for (const auto& c : index.at("cases")) indexed.push_back(c.at("name").get<std::string>());
  std::sort(indexed.begin(), indexed.end());
  EXPECT_EQ(indexed, listed) << "tests/golden/masked/decode/index.json differs from case_names()";
  std::vector<std::string> folders;
  for (const auto& e : fs::directory_iterator(decode_dir()))
    if (e.is_directory() && e.path().filename() != "inputs") folders.push_back(e.path().filename().string());
  std::sort(folders.begin(), folders.end());
  EXPECT_EQ(folders, listed) << "tests/golden/masked/decode differs from case_names()";
  std::vector<std::string> adaptive;
  for (const std::string& name : case_names()) {
    const json meta = read_json(fs::path(decode_dir()) / name / "case.json");
    if (meta.contains("sampling") && meta.at("sampling").at("kind") == "adaptive_sampling") adaptive.push_back(name);
  }
  std::sort(adaptive.begin(), adaptive.end());
  std::vector<std::string> listed_adaptive = adaptive_case_names();
  std::sort(listed_adaptive.begin(), listed_adaptive.end());
  EXPECT_EQ(adaptive, listed_adaptive) << "adaptive_case_names() differs from the cases with adaptive draws";
}

}  // namespace
}  // namespace hotswap
