#include "attention/sequence_attention.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "adapters/mixed_adapter_codec.h"
#include "attention/backend_registry.h"
#include "attention/paged/paged_pattern.h"
#include "engine/attention_choice.h"
#include "kv_cache/streaming_rule.h"

namespace hotswap {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;

const ModelShape kShape{2, 4, 2, 16, 64, ""};

std::shared_ptr<const Adapter> mixed_adapter(const std::string& l0 = "[1, 0.5]", const std::string& l1 = "[0, 0.25]") {
  const std::string doc = "{\"sink_window_size\":4,\"recent_window_size\":24,\"block_size\":8,"
                          "\"model.layers.0.self_attn.adapter\":" + l0 +
                          ",\"model.layers.1.self_attn.adapter\":" + l1 + "}";
  return parse_mixed_adapter(doc, kShape, "gates").value();
}

AttentionChoice parse(const std::string& text) {
  AttentionChoice c;
  std::string error;
  EXPECT_TRUE(parse_attention_choice(text, &c, &error)) << text << ": " << error;
  return c;
}

std::string parse_error(const std::string& text) {
  AttentionChoice c;
  std::string error;
  EXPECT_FALSE(parse_attention_choice(text, &c, &error)) << text;
  return error;
}

// `message` is `before` + the implementation names + `after`. The names are the registered
// implementations' ("auto, eager, streaming, mixed, nsa" today; others may be appended).
void expect_names_listed(const std::string& message, const std::string& before, const std::string& after) {
  EXPECT_THAT(message, StartsWith(before + "auto, "));
  EXPECT_THAT(message, EndsWith(after));
  const size_t names_end = message.size() - after.size();
  ASSERT_GE(names_end, before.size()) << message;
  const std::string names = message.substr(before.size(), names_end - before.size());
  EXPECT_THAT(names, HasSubstr("eager, streaming, mixed, nsa")) << message;
  EXPECT_EQ(names.find_first_of("()'\n"), std::string::npos) << message;  // only names between the two parts
}

// The request's attention object, parsed (it must parse).
nlohmann::json params_of(const AttentionChoice& c) { return nlohmann::json::parse(c.params); }

// The resolved eager / streaming / mixed pattern.
const PagedPattern& pattern(const SequenceAttention& s) { return static_cast<const PagedPattern&>(*s.config); }

// The spec's words, transcribed independently of StreamingRule: a query in block b = t / B
// sees sink blocks [0, ceil(S/B)) and local blocks [b - ceil(R/B) + 1, b], causally.
bool spec_visible(int p, int t, int S, int R, int B) {
  if (p > t) return false;
  const int kb = p / B, b = t / B;
  const int sink_blocks = (S + B - 1) / B, local_blocks = (R + B - 1) / B;
  return kb < sink_blocks || (kb >= b - local_blocks + 1 && kb <= b);
}

TEST(StreamingRule, MatchesTheSpecForEveryPositionPair) {
  for (int B : {1, 2, 3, 8, 16, 128}) {
    for (int S : {0, 1, 4, 8, 17, 128}) {
      for (int R : {1, 2, 15, 16, 33, 1024}) {
        const StreamingRule rule = StreamingRule::from_window(S, R, B);
        for (int t = 0; t < 300; t += (t < 40 ? 1 : 7)) {
          int64_t count = 0;
          for (int p = 0; p <= t + 2; ++p) {
            ASSERT_EQ(rule.visible(p, t), spec_visible(p, t, S, R, B)) << "S=" << S << " R=" << R << " B=" << B
                                                                         << " t=" << t << " p=" << p;
            count += rule.visible(p, t);
          }
          ASSERT_EQ(rule.num_visible(t), count) << "S=" << S << " R=" << R << " B=" << B << " t=" << t;
        }
      }
    }
  }
}

TEST(StreamingRule, TokenGranularIsFirstSinkPlusLastRecentAndDecodeHasNoTileQuirk) {
  const StreamingRule r = StreamingRule::from_window(4, 16, 1);
  // t = 100: positions 0..3 and 85..100.
  for (int p = 0; p <= 100; ++p) EXPECT_EQ(r.visible(p, 100), p < 4 || p >= 85) << p;
  // Block granular, decode at the first position of a block: the previous block is still
  // local (ceil(32/16) = 2 local blocks including the query's own), not hidden.
  const StreamingRule b = StreamingRule::from_window(8, 32, 16);
  EXPECT_EQ(b.sink_end, 16);
  EXPECT_EQ(b.local_start(64), 48);
  EXPECT_TRUE(b.visible(48, 64));
  EXPECT_FALSE(b.visible(47, 64));
  EXPECT_EQ(b.local_start(79), 48);  // the window spans between 17 and 32 tokens
  EXPECT_EQ(b.local_start(80), 64);
}

TEST(ParseAttentionChoice, NamesObjectsAndErrors) {
  EXPECT_EQ(parse("auto").impl, "auto");
  EXPECT_EQ(parse(" eager ").impl, "eager");
  EXPECT_EQ(parse("\"mixed\"").impl, "mixed");
  const AttentionChoice c =
      parse("{\"impl\":\"streaming\",\"sink_window_size\":4,\"recent_window_size\":16,\"block_size\":1}");
  EXPECT_EQ(c.impl, "streaming");
  EXPECT_EQ(params_of(c)["sink_window_size"], 4);
  EXPECT_EQ(params_of(c)["recent_window_size"], 16);
  EXPECT_EQ(params_of(c)["block_size"], 1);
  EXPECT_EQ(params_of(parse("{\"impl\":\"mixed\",\"gate_threshold\":0.5}"))["gate_threshold"].get<float>(), 0.5f);

  // The valid names are the registered implementations' (more may be registered later).
  expect_names_listed(parse_error("flash"), "attention: unknown implementation 'flash'; valid: ", "");
  EXPECT_EQ(parse_error("{\"impl\":\"streaming\",\"window\":4}"),
            "attention: unknown field 'window'; valid fields: impl, sink_window_size, recent_window_size, block_size, "
            "gate_threshold");
  expect_names_listed(parse_error("{\"sink_window_size\":4}"), "attention: field 'impl' is required; valid: ", "");
  EXPECT_EQ(parse_error("{\"impl\":\"streaming\",\"recent_window_size\":0}"),
            "attention: field 'recent_window_size' must be an integer in [1, 1073741824], got 0");
  EXPECT_EQ(parse_error("{\"impl\":\"streaming\",\"block_size\":2.5}"),
            "attention: field 'block_size' must be an integer in [1, 1073741824], got 2.5");
  EXPECT_EQ(parse_error("{\"impl\":\"mixed\",\"gate_threshold\":1.5}"),
            "attention: field 'gate_threshold' must be a number in [0, 1], got 1.5");
  expect_names_listed(parse_error("{\"impl\":3}"), "attention: field 'impl' must be a string, one of ", "");
  expect_names_listed(parse_error("{\"impl\":"), "attention: not a name (", ") or a valid JSON object");
  ASSERT_NE(find_attention_backend("streaming"), nullptr);
  EXPECT_EQ(find_attention_backend("streaming")->name(), std::string("streaming"));
}

TEST(ResolveAttention, AutoPicksFromTheAdapterType) {
  Result<SequenceAttention> none = resolve_attention(AttentionChoice{}, nullptr, kShape);
  ASSERT_TRUE(none.is_ok());
  EXPECT_EQ(std::string(none->name()), "eager");
  EXPECT_EQ(none->cache_namespace, "eager");
  EXPECT_FALSE(none->release_rule);

  Result<SequenceAttention> mixed = resolve_attention(AttentionChoice{}, mixed_adapter(), kShape);
  ASSERT_TRUE(mixed.is_ok()) << mixed.status().message();
  EXPECT_EQ(std::string(mixed->name()), "mixed");
  EXPECT_EQ(pattern(*mixed).window, (StreamingWindow{4, 24, 8}));  // the adapter's windows
  EXPECT_EQ(pattern(*mixed).gates->gates, mixed_adapter()->mixed()->gates);
  EXPECT_EQ(mixed->cache_namespace,
            "mixed:sink=4,recent=24,block=8,threshold=none,adapter=" + mixed_adapter()->sha256());
  // Layer 1's KV head 0 has only gates of exactly 0: that lane gives back what is outside the
  // window, per KV head; the lanes of dense heads keep every position.
  ASSERT_TRUE(mixed->release_rule);
  EXPECT_EQ(mixed->kept_lanes, (std::vector<uint8_t>{1, 1, 0, 1}));
}

TEST(ResolveAttention, ExplicitChoicesThatCannotRunAreErrors) {
  const AttentionChoice mixed = parse("mixed");
  Result<SequenceAttention> r = resolve_attention(mixed, nullptr, kShape);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "attention 'mixed' needs a mixed adapter; the request has no adapter");

  const AttentionChoice nsa = parse("nsa");
  EXPECT_EQ(resolve_attention(nsa, mixed_adapter(), kShape).status().message(),
            "attention 'nsa' needs an nsa adapter; adapter 'gates' is a mixed adapter");

  const AttentionChoice eager = parse("{\"impl\":\"eager\",\"recent_window_size\":8}");
  EXPECT_EQ(resolve_attention(eager, nullptr, kShape).status().message(),
            "attention 'eager': sink_window_size, recent_window_size and block_size apply only to 'streaming' and "
            "'mixed'");

  const AttentionChoice streaming = parse("{\"impl\":\"streaming\",\"gate_threshold\":0.5}");
  EXPECT_EQ(resolve_attention(streaming, nullptr, kShape).status().message(),
            "attention 'streaming': gate_threshold applies only to attention 'mixed'");
  // A window out of range never reaches the backend's resolve: its check_params rejects the
  // field first (parse_attention_choice would have too), and the resolved-window check
  // names the implementation.
  AttentionChoice zero_block;
  zero_block.impl = "streaming";
  zero_block.params = "{\"impl\":\"streaming\",\"block_size\":0}";
  Result<SequenceAttention> zero = resolve_attention(zero_block, nullptr, kShape);
  ASSERT_FALSE(zero.is_ok());
  EXPECT_EQ(zero.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(zero.status().message(), "attention: field 'block_size' must be an integer in [1, 1073741824], got 0");
  EXPECT_EQ(check_window(StreamingWindow{128, 1024, 0}, "streaming").message(),
            "attention 'streaming': block_size must be in [1, 1073741824], got 0");

  const ModelShape other{3, 4, 2, 16, 64, ""};
  EXPECT_EQ(resolve_attention(mixed, mixed_adapter(), other).status().message(),
            "attention 'mixed': adapter gates are for 2 layers x 4 heads, the model has 3 x 4");
}

TEST(ResolveAttention, RequestWindowsOverrideAndNamespacesSeparateCaches) {
  Result<SequenceAttention> defaults = resolve_attention(parse("streaming"), nullptr, kShape);
  ASSERT_TRUE(defaults.is_ok());
  EXPECT_EQ(pattern(*defaults).window, (StreamingWindow{128, 1024, 128}));
  EXPECT_EQ(defaults->cache_namespace, "streaming:sink=128,recent=1024,block=128");
  ASSERT_TRUE(defaults->release_rule);

  const AttentionChoice s = parse("{\"impl\":\"streaming\",\"recent_window_size\":16,\"block_size\":1}");
  Result<SequenceAttention> token = resolve_attention(s, nullptr, kShape);
  EXPECT_EQ(pattern(*token).window, (StreamingWindow{128, 16, 1}));
  EXPECT_NE(token->cache_namespace, defaults->cache_namespace);

  const AttentionChoice m = parse("{\"impl\":\"mixed\",\"sink_window_size\":0}");
  Result<SequenceAttention> overridden = resolve_attention(m, mixed_adapter(), kShape);
  EXPECT_EQ(pattern(*overridden).window, (StreamingWindow{0, 24, 8}));

  // Another adapter version (other bytes) never shares a namespace.
  Result<SequenceAttention> other = resolve_attention(m, mixed_adapter("[1, 0.5]", "[0, 0.26]"), kShape);
  EXPECT_NE(other->cache_namespace, overridden->cache_namespace);
}

TEST(ResolveAttention, GateThresholdMakesHeadsDenseOrStreamingAndEnablesRelease) {
  const AttentionChoice half = parse("{\"impl\":\"mixed\",\"gate_threshold\":0.5}");
  Result<SequenceAttention> duo = resolve_attention(half, mixed_adapter("[1, 0.5]", "[0, 0.25]"), kShape);
  ASSERT_TRUE(duo.is_ok());
  EXPECT_EQ(pattern(*duo).gates->gates, (std::vector<float>{1, 1, 1, 1, 0, 0, 0, 0}));  // 0.5 >= 0.5 is dense
  EXPECT_EQ(duo->cache_namespace.find("threshold=none"), std::string::npos);
  // Layer 0's KV heads stay dense, layer 1's stream: released per KV head.
  ASSERT_TRUE(duo->release_rule);
  EXPECT_EQ(duo->kept_lanes, (std::vector<uint8_t>{1, 1, 0, 0}));

  // A KV head streams only when every query head of its group does: per-query-head gates
  // [0, 0.9 | 0, 0] keep layer 0's KV head 0 (one of its query heads is dense).
  const std::string per_query = "{\"sink_window_size\":4,\"recent_window_size\":24,\"block_size\":8,"
                                "\"model.layers.0.self_attn.adapter\":[0, 0.9, 0, 0],"
                                "\"model.layers.1.self_attn.adapter\":[0, 0, 0, 0]}";
  Result<SequenceAttention> group = resolve_attention(half, parse_mixed_adapter(per_query, kShape, "q").value(), kShape);
  ASSERT_TRUE(group.is_ok()) << group.status().message();
  ASSERT_TRUE(group->release_rule);
  EXPECT_EQ(group->kept_lanes, (std::vector<uint8_t>{1, 0, 0, 0}));

  const AttentionChoice one = parse("{\"impl\":\"mixed\",\"gate_threshold\":1.0}");
  Result<SequenceAttention> all_streaming = resolve_attention(one, mixed_adapter("[0.9, 0.5]", "[0, 0.25]"), kShape);
  EXPECT_TRUE(pattern(*all_streaming).gates->all_gates_are(0.0f));
  ASSERT_TRUE(all_streaming->release_rule);
  EXPECT_EQ(all_streaming->release_rule->sink_end, 8);
  EXPECT_TRUE(all_streaming->kept_lanes.empty());  // whole pages, as `streaming`

  const AttentionChoice zero = parse("{\"impl\":\"mixed\",\"gate_threshold\":0.0}");
  Result<SequenceAttention> all_dense = resolve_attention(zero, mixed_adapter("[0.9, 0.5]", "[0, 0.25]"), kShape);
  EXPECT_FALSE(all_dense->release_rule);  // every KV head is dense: nothing to release
}

}  // namespace
}  // namespace hotswap
