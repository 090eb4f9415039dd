// The summarising maskers' own quantities against the reference (tests/golden/masked/README.md
// section C), beside the selections and outputs masked_golden_test.cc checks for the same cases:
//   hashattention_top_k  every (head, key) score sig_q . sig_k equals the reference's, and the
//                        selected keys' score multiset equals the reference's own selection's
//                        (its tie order differs; the multiset must not);
//   magic_pig            the frozen key mean, the max key norm M and the collision probability
//                        p of every key (1e-6);
//   quest_top_k          every page's upper bound and the chosen pages per head.
#include <gtest/gtest.h>

#include <map>

#include "attention/masked/hash_functions.h"
#include "masked_golden_util.h"

namespace hotswap {

std::vector<std::string> summarising_case_names();  // masked_golden_test.cc

namespace {

using namespace masked_golden;

class MaskedSummarisingGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(MaskedSummarisingGolden, SummariesMatchTheReference) {
  const DecodeCase c = load_case(GetParam());
  if (c.meta.at("mask_state") != "SPARSE") GTEST_SKIP() << "FULL: the maskers' summaries are never scored";
  Result<masked::MaskedConfig> parsed = masked::parse_masked_config(c.meta.at("attention"));
  ASSERT_TRUE(parsed.is_ok()) << parsed.status().message();
  const masked::MaskedConfig& config = parsed.value();
  const PagedCopy cache(c, 16, 5);
  const PagedKvView& kv = cache.view();
  const std::unique_ptr<CaseSummaries> cs = case_summaries(c, config, kv);
  const masked::KeySummaries& ks = *cs->summaries;
  const fs::path dir = fs::path(decode_dir()) / c.name;
  const json& files = c.meta.at("files");
  const int group = c.H / c.Hkv;

  for (size_t index = 0; index < config.maskers.size(); ++index) {
    const masked::MaskerSpec& m = config.maskers[index];
    if (m.type == masked::MaskerType::kHashAttentionTopK) {
      const auto scores = read_entry<int8_t>(dir, files.at("hat_scores"));
      const HashAttentionAdapter& hat = *cs->hat;
      std::vector<float> scratch;
      const json& heads = c.meta.at("hashattention").at("heads");
      // The reference's own selection (its tie order), keys this masker added.
      const auto ref_ptr = read_entry<int32_t>(dir, files.at("sel_ptr"));
      const auto ref_idx = read_entry<int32_t>(dir, files.at("sel_idx"));
      for (int h = 0; h < c.H; ++h) {
        const uint64_t q = masked::hash_signature(hat.layers[static_cast<size_t>(c.layer)].query, hat.activation, h,
                                                  &c.q[static_cast<size_t>(h) * c.d], scratch);
        std::vector<int> ours(static_cast<size_t>(c.sk));
        for (int j = 0; j < c.sk; ++j) {
          ours[static_cast<size_t>(j)] = masked::signature_score(q, ks.hat_signature(index, c.layer, j, h), hat.bits);
          ASSERT_EQ(ours[static_cast<size_t>(j)], scores[static_cast<size_t>(h) * c.sk + j])
              << c.name << " head " << h << " key " << j;
        }
        // Multiset of the scores of every selected key (ours: lowtie files = c.sel_*; theirs:
        // sel_*), restricted to the scores at or above the k-th (the HAT-added part).
        const int kth = heads[static_cast<size_t>(h)].at("kth_score").get<int>();
        std::map<int, int> mine, theirs;
        for (int i = c.sel_ptr[h]; i < c.sel_ptr[h + 1]; ++i) {
          const int sc = ours[static_cast<size_t>(c.sel_idx[static_cast<size_t>(i)])];
          if (sc >= kth) ++mine[sc];
        }
        for (int i = ref_ptr[h]; i < ref_ptr[h + 1]; ++i) {
          const int sc = ours[static_cast<size_t>(ref_idx[static_cast<size_t>(i)])];
          if (sc >= kth) ++theirs[sc];
        }
        EXPECT_EQ(mine, theirs) << c.name << " head " << h << ": selected score multisets differ";
      }
    } else if (m.type == masked::MaskerType::kMagicPig) {
      const json& mp = c.meta.at("magic_pig");
      const masked::KeySummaries::PigLayer& pl = ks.pig(index, c.layer);
      ASSERT_TRUE(pl.initialised);
      const float max_norm = pl.run_max[static_cast<size_t>(c.sk - 1)];
      EXPECT_NEAR(max_norm, mp.at("max_key_norm").get<double>(), 1e-6 * mp.at("max_key_norm").get<double>());
      const auto mean = read_entry<float>(dir, files.at("mp_key_mean"));
      for (int h = 0; h < c.H; ++h)
        for (int x = 0; x < c.d; ++x)
          EXPECT_NEAR(pl.mean[static_cast<size_t>(h / group) * c.d + x], mean[static_cast<size_t>(h) * c.d + x], 1e-6)
              << c.name << " head " << h;
      if (!files.contains("mp_prob")) continue;  // not recorded at sk = 4096
      const auto prob = read_entry<float>(dir, files.at("mp_prob"));
      std::vector<float> qt(static_cast<size_t>(c.d)), kc(static_cast<size_t>(c.d));
      double worst = 0;
      for (int h = 0; h < c.H; ++h) {
        const int g = h / group;
        const float* mu = pl.mean.data() + static_cast<size_t>(g) * c.d;
        for (int x = 0; x < c.d; ++x) qt[static_cast<size_t>(x)] = c.q[static_cast<size_t>(h) * c.d + x] - mu[x];
        const float qn = masked::lsh_norm(qt.data(), c.d);
        for (float& v : qt) v /= (qn + 1e-8f);
        const float qtn = masked::lsh_norm(qt.data(), c.d);
        for (float& v : qt) v /= (qtn + 1e-8f);
        for (int j = 0; j < c.sk; ++j) {
          const float* k = kv.key(j, g);
          for (int x = 0; x < c.d; ++x) kc[static_cast<size_t>(x)] = k[x] - mu[x];
          const float p = masked::lsh_collision_probability(qt.data(), kc.data(), c.d, max_norm, m.lsh_l, m.lsh_k);
          const double e = std::fabs(p - prob[static_cast<size_t>(h) * c.sk + j]);
          worst = std::max(worst, e);
          ASSERT_LT(e, kLshWeightTolerance) << c.name << " head " << h << " key " << j;
        }
      }
      std::printf("[ %-40s ] magic_pig: M %.9g, max |p - p_ref| %.3g\n", c.name.c_str(), max_norm, worst);
    } else if (m.type == masked::MaskerType::kQuestTopK) {
      const json& quest = c.meta.at("quest");
      const int64_t pages = quest.at("num_pages").get<int64_t>();
      const auto want = read_entry<float>(dir, files.at("quest_page_scores"));
      const auto want_pages = quest.at("pages").get<std::vector<std::vector<int64_t>>>();
      for (int h = 0; h < c.H; ++h) {
        std::vector<std::pair<float, int64_t>> ranked;
        for (int64_t p = 0; p < pages; ++p) {
          std::vector<float> b(masked_golden::kMaxBoundFloats);
          const float* bounds = ks.quest_bounds(index, c.layer, p, h / group);
          std::copy(bounds, bounds + 2 * c.d, b.begin());
          if (m.label_bits < 16) {
            masked::pseudo_quantize(b.data(), c.d, m.label_bits);
            masked::pseudo_quantize(b.data() + c.d, c.d, m.label_bits);
          }
          const float score = masked::quest_bound(&c.q[static_cast<size_t>(h) * c.d], b.data(), b.data() + c.d, c.d);
          const float ref = want[static_cast<size_t>(h * pages + p)];
          EXPECT_NEAR(score, ref, 1e-5 * std::max(1.0f, std::fabs(ref))) << c.name << " head " << h << " page " << p;
          ranked.push_back({-score, p});
        }
        std::sort(ranked.begin(), ranked.end());
        std::vector<int64_t> chosen;
        for (size_t i = 0; i < want_pages[static_cast<size_t>(h)].size(); ++i) chosen.push_back(ranked[i].second);
        std::sort(chosen.begin(), chosen.end());
        EXPECT_EQ(chosen, want_pages[static_cast<size_t>(h)]) << c.name << " head " << h;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Decode, MaskedSummarisingGolden, ::testing::ValuesIn(summarising_case_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace hotswap
