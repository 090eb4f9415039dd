// parse_masked_config and MaskedConfig::key (specs/maskers.md Part 1 "Request", Part 2 §3-5).
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "attention/masked/masker_config.h"
#include "masked_test_util.h"

namespace hotswap::masked {
namespace {

using nlohmann::json;
using testing::config_of;

struct BadCase {
  std::string attention;                  // JSON text of the attention object
  std::vector<std::string> must_contain;  // substrings of the message
};

// A list of one masker.
std::string one(const std::string& masker) {
  return R"({"impl":"masked","maskers":[)" + masker + "]}";
}

const char* kAdaptiveOk =
    R"("base_rate_sampling":0.05,"epsilon":0.25,"delta":0.25,"init_offset":128,"local_offset":128)";

std::string adaptive_with(const std::string& replace_key, const std::string& value) {
  json m = json::parse(std::string(R"({"type":"adaptive_sampling",)") + kAdaptiveOk + "}");
  m[replace_key] = json::parse(value);
  return one(m.dump());
}

TEST(MaskedConfig, RejectsBadConfigurationsNamingMaskerAndParameter) {
  const std::vector<BadCase> cases = {
      // the attention object itself
      {"[]", {"attention 'masked': ", "object", "array"}},
      {R"({"impl":"masked"})", {"maskers is required"}},
      {R"({"impl":"masked","maskers":[]})", {"maskers must not be empty"}},
      {R"({"impl":"masked","maskers":{"type":"sink"}})", {"maskers must be a list", "object"}},
      {R"({"impl":"masked","maskers":[{"type":"causal"}],"extra":1})",
       {"unknown field 'extra'", "valid: impl"}},
      {R"({"impl":"dense","maskers":[{"type":"causal"}]})", {"impl must be \"masked\""}},
      {R"({"impl":"masked","maskers":[{"type":"causal"}],"sparse_prefill":1})",
       {"sparse_prefill must be a boolean", "integer 1"}},
      {R"({"impl":"masked","maskers":[{"type":"causal"}],"report_error":"yes"})",
       {"report_error must be a boolean"}},
      // masker shape and type
      {one("3"), {"maskers[0] must be an object", "integer 3"}},
      {one(R"({"sink_size":4})"), {"maskers[0]: missing 'type'", "valid: sink, local"}},
      {one(R"({"type":7})"), {"maskers[0]: type must be a string"}},
      {R"({"impl":"masked","maskers":[{"type":"causal"},{"type":"foo"}]})",
       {"attention 'masked': maskers[1]: unknown type 'foo'; valid: sink, local, causal, oracle_top_k, "
        "oracle_top_p, "
        "random_sampling, adaptive_sampling, hashattention_top_k, magic_pig, quest_top_k"}},
      // the summarising maskers' parameters
      {one(R"({"type":"magic_pig","lsh_k":8})"), {"maskers[0] (magic_pig): lsh_l is required"}},
      {one(R"({"type":"magic_pig","lsh_l":8.0,"lsh_k":8})"),
       {"maskers[0] (magic_pig): lsh_l must be an integer, got float 8.0"}},
      {one(R"({"type":"magic_pig","lsh_l":8,"lsh_k":65})"), {"maskers[0] (magic_pig): lsh_k must be in [1, 64], got 65"}},
      {one(R"({"type":"magic_pig","lsh_l":0,"lsh_k":8})"), {"lsh_l must be in [1, 1024], got 0"}},
      {one(R"({"type":"magic_pig","lsh_l":8,"lsh_k":8,"center":1})"), {"center must be a boolean", "integer 1"}},
      {one(R"({"type":"magic_pig","lsh_l":8,"lsh_k":8,"seed":-1})"), {"seed must be in [0, "}},
      {one(R"({"type":"magic_pig","lsh_l":8,"lsh_k":8,"packing":"int64"})"),
       {"maskers[0] (magic_pig): unknown parameter 'packing'; valid: lsh_l, lsh_k, center, seed"}},
      {one(R"({"type":"hashattention_top_k"})"), {"maskers[0] (hashattention_top_k): heavy_size is required"}},
      {one(R"({"type":"hashattention_top_k","heavy_size":0.1,"hat_bits":32})"),
       {"unknown parameter 'hat_bits'; valid: heavy_size"}},
      {one(R"({"type":"quest_top_k","heavy_size":0.1})"), {"maskers[0] (quest_top_k): page_size is required"}},
      {one(R"({"type":"quest_top_k","heavy_size":0.1,"page_size":0})"), {"page_size must be in [1, 65536], got 0"}},
      {one(R"({"type":"quest_top_k","heavy_size":0.1,"page_size":16,"label_bits":17})"),
       {"label_bits must be in [1, 16], got 17"}},
      {one(R"({"type":"quest_top_k","heavy_size":0,"page_size":16})"), {"heavy_size must be > 0, got 0"}},
      {R"({"impl":"masked","maskers":[{"type":"random_sampling","sampling_rate":0.1},{"type":"magic_pig","lsh_l":8,"lsh_k":8}]})",
       {"maskers[1] (magic_pig): at most one sampling masker per list; maskers[0] (random_sampling)"}},
      // parameters: unknown, missing, wrong type, out of range
      {one(R"({"type":"sink","sink_size":4,"search_space":{}})"),
       {"maskers[0] (sink): unknown parameter 'search_space'; valid: sink_size"}},
      {one(R"({"type":"causal","window_size":4})"), {"maskers[0] (causal): unknown parameter 'window_size'"}},
      {one(R"({"type":"sink"})"), {"maskers[0] (sink): sink_size is required"}},
      {one(R"({"type":"sink","sink_size":"4"})"),
       {"maskers[0] (sink): sink_size must be a number", "string"}},
      {one(R"({"type":"sink","sink_size":true})"),
       {"maskers[0] (sink): sink_size must be a number", "boolean"}},
      {one(R"({"type":"sink","sink_size":null})"), {"maskers[0] (sink): sink_size must be a number", "null"}},
      {one(R"({"type":"sink","sink_size":0})"), {"maskers[0] (sink): sink_size must be > 0, got 0"}},
      {one(R"({"type":"local","window_size":-0.5})"),
       {"maskers[0] (local): window_size must be > 0, got -0.5"}},
      {one(R"({"type":"local","window_size":[4]})"),
       {"maskers[0] (local): window_size must be a number", "array"}},
      {R"({"maskers":[{"type":"sink","sink_size":4},{"type":"local","window_size":4},{"type":"oracle_top_k","heavy_size":-1}]})",
       {"attention 'masked': maskers[2] (oracle_top_k): heavy_size must be > 0, got -1"}},
      {one(R"({"type":"oracle_top_k","heavy_size":0.0})"),
       {"maskers[0] (oracle_top_k): heavy_size must be > 0, got 0.0"}},
      {one(R"({"type":"oracle_top_k","heavy_size":18446744073709551615})"),
       {"maskers[0] (oracle_top_k): heavy_size must be at most 9223372036854775807"}},
      {one(R"({"type":"oracle_top_p","top_p":1})"),
       {"maskers[0] (oracle_top_p): top_p must be a float literal", "integer 1"}},
      {one(R"({"type":"oracle_top_p","top_p":1.5})"),
       {"maskers[0] (oracle_top_p): top_p must be in [0, 1], got 1.5"}},
      {one(R"({"type":"oracle_top_p","top_p":-0.1})"),
       {"maskers[0] (oracle_top_p): top_p must be in [0, 1]"}},
      {one(R"({"type":"oracle_top_p"})"), {"maskers[0] (oracle_top_p): top_p is required"}},
      {one(R"({"type":"random_sampling","sampling_rate":0.0})"),
       {"maskers[0] (random_sampling): sampling_rate must be in (0, 1], got 0.0"}},
      {one(R"({"type":"random_sampling","sampling_rate":2})"),
       {"maskers[0] (random_sampling): sampling_rate must be in (0, 1]"}},
      {one(R"({"type":"random_sampling","sampling_rate":false})"),
       {"(random_sampling): sampling_rate must be a number"}},
      {adaptive_with("base_rate_sampling", "1.0"),
       {"maskers[0] (adaptive_sampling): base_rate_sampling must be in [0, 1) when a fraction, got 1.0"}},
      {adaptive_with("base_rate_sampling", "-2"),
       {"maskers[0] (adaptive_sampling): base_rate_sampling must be >= 0 when an integer, got -2"}},
      {adaptive_with("epsilon", "0.0"),
       {"maskers[0] (adaptive_sampling): epsilon must be in (0, 1), got 0.0"}},
      {adaptive_with("epsilon", "1"), {"maskers[0] (adaptive_sampling): epsilon must be in (0, 1), got 1.0"}},
      {adaptive_with("delta", "1.0"), {"maskers[0] (adaptive_sampling): delta must be in (0, 1)"}},
      {adaptive_with("delta", "true"), {"maskers[0] (adaptive_sampling): delta must be a number", "boolean"}},
      {adaptive_with("init_offset", "1.5"),
       {"maskers[0] (adaptive_sampling): init_offset must be in [0, 1] when a fraction"}},
      {adaptive_with("local_offset", "-1"),
       {"maskers[0] (adaptive_sampling): local_offset must be >= 0 when an integer"}},
      {one(R"({"type":"adaptive_sampling","base_rate_sampling":0.05,"epsilon":0.25,"delta":0.25,"init_offset":128})"),
       {"maskers[0] (adaptive_sampling): local_offset is required"}},
      {adaptive_with("seed", "3"), {"maskers[0] (adaptive_sampling): unknown parameter 'seed'"}},
      {R"({"maskers":[{"type":"adaptive_sampling",)" + std::string(kAdaptiveOk) +
           R"(},{"type":"sink","sink_size":4},{"type":"random_sampling","sampling_rate":0.1}]})",
       {"maskers[2] (random_sampling): at most one sampling masker per list; maskers[0] "
        "(adaptive_sampling)"}},
  };
  ASSERT_GE(cases.size(), 25u);
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.attention);
    Result<MaskedConfig> r = parse_masked_config(json::parse(c.attention));
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message().rfind("attention 'masked': ", 0), 0u) << r.status().message();
    for (const std::string& s : c.must_contain)
      EXPECT_NE(r.status().message().find(s), std::string::npos) << "message: " << r.status().message();
  }
}

TEST(MaskedConfig, NonFiniteNumbersBuiltInCodeAreRejected) {
  json a = {{"maskers", {{{"type", "sink"}, {"sink_size", std::nan("")}}}}};
  Result<MaskedConfig> r = parse_masked_config(a);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("maskers[0] (sink): sink_size must be finite"), std::string::npos);
}

TEST(MaskedConfig, ParsesTheSpecExampleWithTypedSizes) {
  const MaskedConfig c = config_of(R"({"impl":"masked","maskers":[{"type":"sink","sink_size":128},
      {"type":"local","window_size":128},{"type":"oracle_top_k","heavy_size":0.05},
      {"type":"adaptive_sampling","base_rate_sampling":0.05,"epsilon":0.25,"delta":0.25,"init_offset":128,
       "local_offset":128}],"sparse_prefill":false})");
  ASSERT_EQ(c.maskers.size(), 4u);
  EXPECT_EQ(c.maskers[0].type, MaskerType::kSink);
  EXPECT_FALSE(c.maskers[0].size.is_fraction);
  EXPECT_EQ(c.maskers[0].size.tokens, 128);
  EXPECT_TRUE(c.maskers[2].size.is_fraction);
  EXPECT_DOUBLE_EQ(c.maskers[2].size.fraction, 0.05);
  const MaskerSpec& a = c.maskers[3];
  EXPECT_TRUE(a.base_rate_sampling.is_fraction);
  EXPECT_FALSE(a.init_offset.is_fraction);
  EXPECT_EQ(a.local_offset.tokens, 128);
  EXPECT_NEAR(a.z, 0.6744897501960817, 1e-12);  // scipy.stats.norm.ppf(0.75)
  EXPECT_FALSE(c.sparse_prefill);
  EXPECT_FALSE(c.report_error);
  EXPECT_STREQ(masker_type_name(a.type), "adaptive_sampling");
}

TEST(MaskedConfig, IntegerAndFractionLiteralsDiffer) {
  const MaskedConfig one_token = config_of(one(R"({"type":"sink","sink_size":1})"));
  const MaskedConfig all_keys = config_of(one(R"({"type":"sink","sink_size":1.0})"));
  const MaskedConfig exponent = config_of(one(R"({"type":"sink","sink_size":1e0})"));
  EXPECT_EQ(one_token.maskers[0].size.resolve(50), 1);
  EXPECT_EQ(all_keys.maskers[0].size.resolve(50), 50);
  EXPECT_NE(one_token.key(), all_keys.key());
  EXPECT_EQ(all_keys.key(), exponent.key());  // 1e0 is the float 1.0
  EXPECT_NE(one_token, all_keys);
}

TEST(MaskedConfig, SummarisingMaskersTakeTheirDefaults) {
  const MaskedConfig c = config_of(one(R"({"type":"magic_pig","lsh_l":8,"lsh_k":4},{"type":"quest_top_k","heavy_size":64,"page_size":16})"));
  ASSERT_EQ(c.maskers.size(), 2u);
  EXPECT_EQ(c.maskers[0].type, MaskerType::kMagicPig);
  EXPECT_EQ(c.maskers[0].lsh_l, 8);
  EXPECT_EQ(c.maskers[0].lsh_k, 4);
  EXPECT_TRUE(c.maskers[0].center);
  EXPECT_EQ(c.maskers[0].seed, 42);  // the reference's default
  EXPECT_EQ(c.maskers[1].type, MaskerType::kQuestTopK);
  EXPECT_EQ(c.maskers[1].page_size, 16);
  EXPECT_EQ(c.maskers[1].label_bits, 16);
  EXPECT_TRUE(is_sampling_masker(MaskerType::kMagicPig));
  EXPECT_FALSE(uses_request_seed(MaskerType::kMagicPig));
  EXPECT_TRUE(keeps_key_summaries(MaskerType::kQuestTopK));
  EXPECT_EQ(c.key(), R"({"impl":"masked","maskers":[{"type":"magic_pig","lsh_l":8,"lsh_k":4,"center":true,"seed":42},)"
                     R"({"type":"quest_top_k","heavy_size":64,"page_size":16,"label_bits":16}],"sparse_prefill":false,)"
                     R"("report_error":false})");
}

TEST(MaskedConfig, SizeResolveTruncatesLikePython) {
  EXPECT_EQ((Size{true, 0, 0.29}).resolve(100), 28);  // int(0.29 * 100) == 28 in Python
  EXPECT_EQ((Size{true, 0, 0.05}).resolve(50), 2);    // int(2.5) == 2
  EXPECT_EQ((Size{true, 0, 0.01}).resolve(50), 0);
  EXPECT_EQ((Size{false, 7, 0}).resolve(3), 7);
  EXPECT_EQ((Size{true, 0, 1e300}).resolve(10), INT64_MAX);
}

TEST(MaskedConfig, KeyIsCanonicalAndRoundTrips) {
  // Member order, spaces and the impl field do not matter; defaults are written out.
  const MaskedConfig a = config_of(R"({"maskers":[{"heavy_size":0.1,"type":"oracle_top_k"},
      {"type":"random_sampling","sampling_rate":1}],"report_error":true})");
  const MaskedConfig b = config_of(R"({"report_error":true,"impl":"masked","sparse_prefill":false,
      "maskers":[{"type":"oracle_top_k","heavy_size":1e-1},{"sampling_rate":1.0,"type":"random_sampling"}]})");
  EXPECT_EQ(a.key(), b.key());
  EXPECT_EQ(a.key(),
            R"({"impl":"masked","maskers":[{"type":"oracle_top_k","heavy_size":0.1},)"
            R"({"type":"random_sampling","sampling_rate":1.0}],"sparse_prefill":false,"report_error":true})");

  const std::vector<std::string> good = {
      one(R"({"type":"causal"})"),
      one(R"({"type":"sink","sink_size":128},{"type":"local","window_size":0.125})"),
      one(R"({"type":"oracle_top_p","top_p":0.0},{"type":"oracle_top_k","heavy_size":3})"),
      one(std::string(R"({"type":"sink","sink_size":4},{"type":"adaptive_sampling",)") + kAdaptiveOk + "}"),
      one(R"({"type":"adaptive_sampling","base_rate_sampling":0,"epsilon":0.1,"delta":0.3,"init_offset":0.0,"local_offset":1.0})"),
      R"({"maskers":[{"type":"local","window_size":16}],"sparse_prefill":true})",
      one(R"({"type":"sink","sink_size":128},{"type":"hashattention_top_k","heavy_size":0.1})"),
      one(R"({"type":"magic_pig","lsh_l":8,"lsh_k":8})"),
      one(R"({"type":"magic_pig","lsh_l":75,"lsh_k":8,"center":false,"seed":7})"),
      one(R"({"type":"quest_top_k","heavy_size":2048,"page_size":16})"),
      one(R"({"type":"quest_top_k","heavy_size":0.05,"page_size":64,"label_bits":8})"),
  };
  for (const std::string& text : good) {
    SCOPED_TRACE(text);
    const MaskedConfig c = config_of(text);
    const std::string key = c.key();
    const MaskedConfig again = config_of(key);  // the key is itself a valid attention object
    EXPECT_EQ(again, c);
    EXPECT_EQ(again.key(), key);
    EXPECT_EQ(config_of(text).key(), key);  // stable
  }
}

}  // namespace
}  // namespace hotswap::masked
