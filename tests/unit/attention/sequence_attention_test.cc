#include "attention/sequence_attention.h"

#include <gtest/gtest.h>

#include <string>

#include "adapters/mixed_adapter_codec.h"
#include "engine/attention_choice.h"
#include "kv_cache/streaming_rule.h"

namespace hotswap {
namespace {

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
  EXPECT_EQ(parse("auto").impl, AttentionImpl::kAuto);
  EXPECT_EQ(parse(" eager ").impl, AttentionImpl::kEager);
  EXPECT_EQ(parse("\"mixed\"").impl, AttentionImpl::kMixed);
  const AttentionChoice c =
      parse("{\"impl\":\"streaming\",\"sink_window_size\":4,\"recent_window_size\":16,\"block_size\":1}");
  EXPECT_EQ(c.impl, AttentionImpl::kStreaming);
  EXPECT_EQ(c.sink_window_size, 4);
  EXPECT_EQ(c.recent_window_size, 16);
  EXPECT_EQ(c.block_size, 1);
  EXPECT_EQ(parse("{\"impl\":\"mixed\",\"gate_threshold\":0.5}").gate_threshold, 0.5f);

  EXPECT_EQ(parse_error("flash"), "attention: unknown implementation 'flash'; valid: auto, eager, streaming, mixed, nsa");
  EXPECT_EQ(parse_error("{\"impl\":\"streaming\",\"window\":4}"),
            "attention: unknown field 'window'; valid fields: impl, sink_window_size, recent_window_size, block_size, "
            "gate_threshold");
  EXPECT_EQ(parse_error("{\"sink_window_size\":4}"),
            "attention: field 'impl' is required; valid: auto, eager, streaming, mixed, nsa");
  EXPECT_EQ(parse_error("{\"impl\":\"streaming\",\"recent_window_size\":0}"),
            "attention: field 'recent_window_size' must be an integer in [1, 1073741824], got 0");
  EXPECT_EQ(parse_error("{\"impl\":\"streaming\",\"block_size\":2.5}"),
            "attention: field 'block_size' must be an integer in [1, 1073741824], got 2.5");
  EXPECT_EQ(parse_error("{\"impl\":\"mixed\",\"gate_threshold\":1.5}"),
            "attention: field 'gate_threshold' must be a number in [0, 1], got 1.5");
  EXPECT_EQ(parse_error("{\"impl\":3}"),
            "attention: field 'impl' must be a string, one of auto, eager, streaming, mixed, nsa");
  EXPECT_EQ(parse_error("{\"impl\":"), "attention: not a name (auto, eager, streaming, mixed, nsa) or a valid JSON object");
  EXPECT_EQ(attention_impl_name(AttentionImpl::kStreaming), std::string("streaming"));
}

TEST(ResolveAttention, AutoPicksFromTheAdapterType) {
  Result<SequenceAttention> none = resolve_attention(AttentionChoice{}, nullptr, kShape);
  ASSERT_TRUE(none.is_ok());
  EXPECT_EQ(none->impl, AttentionImpl::kEager);
  EXPECT_EQ(none->cache_namespace, "eager");
  EXPECT_FALSE(none->release_rule);

  Result<SequenceAttention> mixed = resolve_attention(AttentionChoice{}, mixed_adapter(), kShape);
  ASSERT_TRUE(mixed.is_ok()) << mixed.status().message();
  EXPECT_EQ(mixed->impl, AttentionImpl::kMixed);
  EXPECT_EQ(mixed->window, (StreamingWindow{4, 24, 8}));  // the adapter's windows
  EXPECT_EQ(mixed->gates->gates, mixed_adapter()->mixed()->gates);
  EXPECT_EQ(mixed->cache_namespace,
            "mixed:sink=4,recent=24,block=8,threshold=none,adapter=" + mixed_adapter()->sha256());
  EXPECT_FALSE(mixed->release_rule);  // some heads are dense
}

TEST(ResolveAttention, ExplicitChoicesThatCannotRunAreErrors) {
  AttentionChoice mixed;
  mixed.impl = AttentionImpl::kMixed;
  Result<SequenceAttention> r = resolve_attention(mixed, nullptr, kShape);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "attention 'mixed' needs a mixed adapter; the request has no adapter");

  AttentionChoice nsa;
  nsa.impl = AttentionImpl::kNsa;
  EXPECT_EQ(resolve_attention(nsa, mixed_adapter(), kShape).status().message(),
            "attention 'nsa' needs an nsa adapter; adapter 'gates' is a mixed adapter");

  AttentionChoice eager;
  eager.impl = AttentionImpl::kEager;
  eager.recent_window_size = 8;
  EXPECT_EQ(resolve_attention(eager, nullptr, kShape).status().message(),
            "attention 'eager': sink_window_size, recent_window_size and block_size apply only to 'streaming' and "
            "'mixed'");

  AttentionChoice streaming;
  streaming.impl = AttentionImpl::kStreaming;
  streaming.gate_threshold = 0.5f;
  EXPECT_EQ(resolve_attention(streaming, nullptr, kShape).status().message(),
            "attention 'streaming': gate_threshold applies only to attention 'mixed'");
  streaming.gate_threshold.reset();
  streaming.block_size = 0;
  EXPECT_EQ(resolve_attention(streaming, nullptr, kShape).status().message(),
            "attention 'streaming': block_size must be in [1, 1073741824], got 0");

  const ModelShape other{3, 4, 2, 16, 64, ""};
  EXPECT_EQ(resolve_attention(mixed, mixed_adapter(), other).status().message(),
            "attention 'mixed': adapter gates are for 2 layers x 4 heads, the model has 3 x 4");
}

TEST(ResolveAttention, RequestWindowsOverrideAndNamespacesSeparateCaches) {
  AttentionChoice s;
  s.impl = AttentionImpl::kStreaming;
  Result<SequenceAttention> defaults = resolve_attention(s, nullptr, kShape);
  ASSERT_TRUE(defaults.is_ok());
  EXPECT_EQ(defaults->window, (StreamingWindow{128, 1024, 128}));
  EXPECT_EQ(defaults->cache_namespace, "streaming:sink=128,recent=1024,block=128");
  ASSERT_TRUE(defaults->release_rule);

  s.recent_window_size = 16;
  s.block_size = 1;
  Result<SequenceAttention> token = resolve_attention(s, nullptr, kShape);
  EXPECT_EQ(token->window, (StreamingWindow{128, 16, 1}));
  EXPECT_NE(token->cache_namespace, defaults->cache_namespace);

  AttentionChoice m;
  m.impl = AttentionImpl::kMixed;
  m.sink_window_size = 0;
  Result<SequenceAttention> overridden = resolve_attention(m, mixed_adapter(), kShape);
  EXPECT_EQ(overridden->window, (StreamingWindow{0, 24, 8}));

  // Another adapter version (other bytes) never shares a namespace.
  Result<SequenceAttention> other = resolve_attention(m, mixed_adapter("[1, 0.5]", "[0, 0.26]"), kShape);
  EXPECT_NE(other->cache_namespace, overridden->cache_namespace);
}

TEST(ResolveAttention, GateThresholdMakesHeadsDenseOrStreamingAndEnablesRelease) {
  AttentionChoice m;
  m.impl = AttentionImpl::kMixed;
  m.gate_threshold = 0.5f;
  Result<SequenceAttention> duo = resolve_attention(m, mixed_adapter("[1, 0.5]", "[0, 0.25]"), kShape);
  ASSERT_TRUE(duo.is_ok());
  EXPECT_EQ(duo->gates->gates, (std::vector<float>{1, 1, 1, 1, 0, 0, 0, 0}));  // 0.5 >= 0.5 is dense
  EXPECT_EQ(duo->cache_namespace.find("threshold=none"), std::string::npos);
  EXPECT_FALSE(duo->release_rule);  // layer 0 has dense heads

  m.gate_threshold = 1.0f;
  Result<SequenceAttention> all_streaming = resolve_attention(m, mixed_adapter("[0.9, 0.5]", "[0, 0.25]"), kShape);
  EXPECT_TRUE(all_streaming->gates->all_gates_are(0.0f));
  ASSERT_TRUE(all_streaming->release_rule);
  EXPECT_EQ(all_streaming->release_rule->sink_end, 8);
}

}  // namespace
}  // namespace hotswap
