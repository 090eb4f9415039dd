#include "adapters/mixed_adapter_codec.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "adapters/sha256.h"

namespace hotswap {
namespace {

// L = 2 layers, H = 4 query heads, Hkv = 2 KV heads (groups of 2).
ModelShape test_shape() {
  ModelShape s;
  s.num_layers = 2;
  s.num_heads = 4;
  s.num_kv_heads = 2;
  s.head_dim = 16;
  s.hidden_size = 64;
  s.model_name = "tiny-llama";
  return s;
}

constexpr const char* kL0 = "model.layers.0.self_attn.adapter.weight";
constexpr const char* kL1 = "model.layers.1.self_attn.adapter.weight";

std::string dict_doc(const std::string& l0, const std::string& l1, const std::string& extra = "") {
  return std::string("{") + extra + "\"adapter_weight_dict\":{\"" + kL0 + "\":" + l0 + ",\"" + kL1 + "\":" + l1 + "}}";
}

std::shared_ptr<const Adapter> parse_ok(const std::string& doc) {
  Result<std::shared_ptr<const Adapter>> r = parse_mixed_adapter(doc, test_shape(), "a");
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  return r.is_ok() ? r.value() : nullptr;
}

std::vector<float> gates_of(const Adapter& a) { return a.mixed()->gates; }

TEST(Sha256, MatchesFipsVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(MixedAdapterCodec, CanonicalDocumentRepeatsKvGatesToQueryHeads) {
  const std::string doc =
      "{\"adapter_type\":\"mixed\",\"model_name\":\"tiny-llama\",\"sink_window_size\":8,\"recent_window_size\":32,"
      "\"block_size\":16," +
      dict_doc("[1.0, 0.25]", "[0, 1]").substr(1);
  auto a = parse_ok(doc);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->type(), AdapterType::kMixed);
  EXPECT_EQ(a->name(), "a");
  EXPECT_EQ(a->sha256(), sha256_hex(doc));
  EXPECT_EQ(a->version(), a->sha256());
  EXPECT_EQ(a->source_bytes(), doc.size());
  EXPECT_EQ(a->num_layers(), 2);
  EXPECT_EQ(a->mixed()->window, (StreamingWindow{8, 32, 16}));
  EXPECT_EQ(gates_of(*a), (std::vector<float>{1.0f, 1.0f, 0.25f, 0.25f, 0.0f, 0.0f, 1.0f, 1.0f}));
  EXPECT_EQ(a->mixed()->gate(1, 3), 1.0f);
  EXPECT_EQ(a->mixed()->num_per_query_head_layers, 0);
  EXPECT_EQ(a->description(),
            "mixed adapter 'a': 2 layers, gates per KV head, sink_window_size 8, recent_window_size 32, block_size 16, "
            "trained for 'tiny-llama'");
  EXPECT_EQ(a->parameters_json(),
            "{\"sink_window_size\":8,\"recent_window_size\":32,\"block_size\":16,\"gates_per\":\"kv_head\","
            "\"model_name\":\"tiny-llama\"}");
}

TEST(MixedAdapterCodec, AbsentTypeAndWindowsMeanMixedWithServerDefaults) {
  auto a = parse_ok(dict_doc("[0.5, 0.5]", "[0.5, 0.5]"));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->type(), AdapterType::kMixed);
  EXPECT_EQ(a->mixed()->window, (StreamingWindow{128, 1024, 128}));
}

TEST(MixedAdapterCodec, AcceptsTopLevelDictionaryAndKeysWithoutWeightSuffix) {
  const std::string doc =
      "{\"sink_window_size\":4,\"trainer\":\"areal\",\"model.layers.1.self_attn.adapter\":[0.1,0.2],"
      "\"model.layers.0.self_attn.adapter.weight\":[0.3,0.4]}";
  auto a = parse_ok(doc);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->mixed()->window.sink_window_size, 4);
  EXPECT_EQ(gates_of(*a), (std::vector<float>{0.3f, 0.3f, 0.4f, 0.4f, 0.1f, 0.1f, 0.2f, 0.2f}));
}

TEST(MixedAdapterCodec, PerQueryHeadListsKeepDistinctGatesWithinAGroup) {
  auto a = parse_ok(dict_doc("[1, 0, 0.5, 0.75]", "[0.2, 0.8]"));
  ASSERT_TRUE(a);
  EXPECT_EQ(gates_of(*a), (std::vector<float>{1.0f, 0.0f, 0.5f, 0.75f, 0.2f, 0.2f, 0.8f, 0.8f}));
  EXPECT_EQ(a->mixed()->num_per_query_head_layers, 1);
  EXPECT_NE(a->description().find("gates per KV or query head"), std::string::npos) << a->description();
}

TEST(MixedAdapterCodec, ModelNameMismatchIsReportedNotRejected) {
  auto a = parse_ok("{\"model_name\":\"other/model\"," + dict_doc("[1,1]", "[1,1]").substr(1));
  ASSERT_TRUE(a);
  EXPECT_NE(a->description().find("trained for 'other/model' (differs from the base model 'tiny-llama')"),
            std::string::npos)
      << a->description();
}

TEST(MixedAdapterCodec, WithNameKeepsEverythingElse) {
  auto a = parse_ok(dict_doc("[1,0]", "[0,1]"));
  ASSERT_TRUE(a);
  auto b = a->with_name("renamed");
  EXPECT_EQ(b->name(), "renamed");
  EXPECT_EQ(b->sha256(), a->sha256());
  EXPECT_EQ(b->mixed(), a->mixed());
}

struct Rejection {
  const char* what;
  std::string doc;
  std::string message;
};

TEST(MixedAdapterCodec, RejectsEveryBrokenRuleWithKeyLayerExpectedAndActual) {
  const std::string range = "expected a layer in 0..1 (num_hidden_layers 2)";
  const std::string sizes = "expected a list of 2 (num_key_value_heads) or 4 (num_attention_heads) gates";
  const std::vector<Rejection> cases = {
      {"too many layers",
       "{\"adapter_weight_dict\":{\"" + std::string(kL0) + "\":[1,1],\"" + kL1 +
           "\":[1,1],\"model.layers.2.self_attn.adapter.weight\":[1,1]}}",
       "key 'model.layers.2.self_attn.adapter.weight' (layer 2): layer out of range; " + range + ", got 2"},
      {"too few layers", "{\"adapter_weight_dict\":{\"" + std::string(kL0) + "\":[1,1]}}",
       "key 'model.layers.1.self_attn.adapter.weight' (layer 1): missing; expected gates for every layer 0..1 "
       "(num_hidden_layers 2), got 1 layer"},
      {"no layers", "{\"adapter_weight_dict\":{}}",
       "key 'model.layers.0.self_attn.adapter.weight' (layer 0): missing; expected gates for every layer 0..1 "
       "(num_hidden_layers 2), got 0 layers"},
      {"duplicate layer, two spellings",
       "{\"adapter_weight_dict\":{\"" + std::string(kL0) + "\":[1,1],\"model.layers.0.self_attn.adapter\":[1,1],\"" +
           kL1 + "\":[1,1]}}",
       "key 'model.layers.0.self_attn.adapter' (layer 0): duplicate of key 'model.layers.0.self_attn.adapter.weight'; "
       "expected each layer exactly once"},
      {"duplicate JSON key", dict_doc("[1,1]", "[1,1]").insert(24, std::string("\"") + kL1 + "\":[0,0],"),
       "key 'model.layers.1.self_attn.adapter.weight' (layer 1): appears twice in one object; expected each key "
       "exactly once"},
      {"wrong length", dict_doc("[1,1]", "[1,0,1]"),
       "key 'model.layers.1.self_attn.adapter.weight' (layer 1): " + sizes + ", got a list of 3"},
      {"not a list", dict_doc("0.5", "[1,1]"),
       "key 'model.layers.0.self_attn.adapter.weight' (layer 0): " + sizes + ", got 0.5"},
      {"NaN literal", dict_doc("[1,NaN]", "[1,1]"),
       "key 'model.layers.0.self_attn.adapter.weight' (layer 0): element 1 must be a finite number in [0, 1], got NaN"},
      {"Infinity literal", dict_doc("[1,1]", "[Infinity,1]"),
       "key 'model.layers.1.self_attn.adapter.weight' (layer 1): element 0 must be a finite number in [0, 1], got "
       "Infinity"},
      {"-Infinity literal", dict_doc("[1,1,1,-Infinity]", "[1,1]"),
       "key 'model.layers.0.self_attn.adapter.weight' (layer 0): element 3 must be a finite number in [0, 1], got "
       "-Infinity"},
      {"overflowing number", dict_doc("[1e999,1]", "[1,1]"),
       "key 'model.layers.0.self_attn.adapter.weight' (layer 0): element 0 must be a finite number in [0, 1], got "
       "1e999"},
      {"above 1", dict_doc("[1,1]", "[0.5,1.5]"),
       "key 'model.layers.1.self_attn.adapter.weight' (layer 1): element 1 must lie in [0, 1], got 1.5"},
      {"below 0", dict_doc("[-0.25,1]", "[1,1]"),
       "key 'model.layers.0.self_attn.adapter.weight' (layer 0): element 0 must lie in [0, 1], got -0.25"},
      {"string element", dict_doc("[1,\"0.5\"]", "[1,1]"),
       "key 'model.layers.0.self_attn.adapter.weight' (layer 0): element 1 must be a number in [0, 1], got string "
       "\"0.5\""},
      {"boolean element", dict_doc("[1,1]", "[true,1]"),
       "key 'model.layers.1.self_attn.adapter.weight' (layer 1): element 0 must be a number in [0, 1], got boolean "
       "true"},
      {"null element", dict_doc("[null,1]", "[1,1]"),
       "key 'model.layers.0.self_attn.adapter.weight' (layer 0): element 0 must be a number in [0, 1], got null"},
      {"nested list element", dict_doc("[[1],1]", "[1,1]"),
       "key 'model.layers.0.self_attn.adapter.weight' (layer 0): element 0 must be a number in [0, 1], got an array"},
      {"unknown adapter_type", "{\"adapter_type\":\"lora\"," + dict_doc("[1,1]", "[1,1]").substr(1),
       "key 'adapter_type': unknown adapter type 'lora'; expected 'mixed' or 'nsa'"},
      {"nsa adapter_type", "{\"adapter_type\":\"nsa\"," + dict_doc("[1,1]", "[1,1]").substr(1),
       "key 'adapter_type': expected 'mixed', got 'nsa' (an nsa adapter, not handled by the mixed-adapter parser)"},
      {"adapter_type not a string", "{\"adapter_type\":1," + dict_doc("[1,1]", "[1,1]").substr(1),
       "key 'adapter_type': expected the string 'mixed', got 1"},
      {"window not an integer", "{\"sink_window_size\":128.0," + dict_doc("[1,1]", "[1,1]").substr(1),
       "key 'sink_window_size': expected a JSON integer in [0, 1073741824], got 128.0"},
      {"negative sink", "{\"sink_window_size\":-1," + dict_doc("[1,1]", "[1,1]").substr(1),
       "key 'sink_window_size': expected a JSON integer in [0, 1073741824], got -1"},
      {"zero recent window", "{\"recent_window_size\":0," + dict_doc("[1,1]", "[1,1]").substr(1),
       "key 'recent_window_size': expected a JSON integer in [1, 1073741824], got 0"},
      {"block size as string", "{\"block_size\":\"16\"," + dict_doc("[1,1]", "[1,1]").substr(1),
       "key 'block_size': expected a JSON integer in [1, 1073741824], got string \"16\""},
      {"huge block size", "{\"block_size\":4294967296," + dict_doc("[1,1]", "[1,1]").substr(1),
       "key 'block_size': expected a JSON integer in [1, 1073741824], got 4294967296"},
      {"dictionary not an object", "{\"adapter_weight_dict\":[[1,1],[1,1]]}",
       "key 'adapter_weight_dict': expected an object mapping 'model.layers.0.self_attn.adapter.weight' to gate "
       "lists, got an array"},
      {"unknown key in dictionary", "{\"adapter_weight_dict\":{\"layers.0\":[1,1]}}",
       "key 'layers.0' in 'adapter_weight_dict': not a layer gate key; expected "
       "'model.layers.{i}.self_attn.adapter.weight' (the '.weight' suffix is optional) for a layer i in 0..1"},
      {"malformed layer key at top level", "{\"model.layers.01.self_attn.adapter\":[1,1]}",
       "key 'model.layers.01.self_attn.adapter': not a layer gate key; expected "
       "'model.layers.{i}.self_attn.adapter.weight' (the '.weight' suffix is optional) for a layer i in 0..1"},
      {"negative layer index", "{\"adapter_weight_dict\":{\"model.layers.-2.self_attn.adapter.weight\":[1,1]}}",
       "key 'model.layers.-2.self_attn.adapter.weight' in 'adapter_weight_dict': not a layer gate key; expected "
       "'model.layers.{i}.self_attn.adapter.weight' (the '.weight' suffix is optional) for a layer i in 0..1"},
      {"gates in both places", "{\"" + std::string(kL0) + "\":[1,1]," + dict_doc("[1,1]", "[1,1]").substr(1),
       "key 'model.layers.0.self_attn.adapter.weight': layer gates given at top level and under "
       "'adapter_weight_dict'; expected them in one place"},
      {"model_name not a string", "{\"model_name\":[\"x\"]," + dict_doc("[1,1]", "[1,1]").substr(1),
       "key 'model_name': expected a string, got an array"},
      {"top level not an object", "[1, 2]", "adapter document must be a JSON object, got array"},
      {"not JSON", "{\"adapter_weight_dict\": {",
       "adapter document is not valid JSON (byte 26): [json.exception.parse_error.101] parse error at line 1, "
       "column 26: syntax error while parsing object key - unexpected end of input; expected string literal"},
      {"nested too deep", std::string(100, '[') + std::string(100, ']'),
       "adapter document nests deeper than 64 levels"},
  };
  ASSERT_GE(cases.size(), 15u);
  for (const Rejection& c : cases) {
    Result<std::shared_ptr<const Adapter>> r = parse_mixed_adapter(c.doc, test_shape(), "x");
    ASSERT_FALSE(r.is_ok()) << c.what << ": accepted " << c.doc;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << c.what;
    EXPECT_EQ(r.status().message(), c.message) << c.what << "\n  document: " << c.doc;
  }
}

TEST(MixedAdapterCodec, EqualShapesOfHeadsAcceptOneListLength) {
  ModelShape mha = test_shape();
  mha.num_kv_heads = 4;  // MHA: H == Hkv
  Result<std::shared_ptr<const Adapter>> r = parse_mixed_adapter(dict_doc("[1,0,1]", "[1,1,1,1]"), mha);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message(),
            "key 'model.layers.0.self_attn.adapter.weight' (layer 0): expected a list of 4 gates, got a list of 3");
  EXPECT_TRUE(parse_mixed_adapter(dict_doc("[1,0,1,0]", "[1,1,1,1]"), mha).is_ok());
}

}  // namespace
}  // namespace hotswap
