#include "adapters/nsa_adapter_codec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <string>

#include "nsa_test_util.h"

namespace hotswap {
namespace {

using Json = nlohmann::ordered_json;
using testing::NamedTensor;

ModelShape small_shape() {
  ModelShape m;
  m.num_layers = 2;
  m.num_heads = 4;
  m.num_kv_heads = 2;
  m.head_dim = 8;
  m.hidden_size = 16;
  return m;
}

NsaConfig small_config() {
  NsaConfig c;
  c.compress_block_size = 4;
  c.compress_stride = 2;
  c.selection_block_size = 4;
  c.num_selected_blocks = 2;
  c.sliding_window_size = 8;
  c.k_compress = NsaCompression::kMaxPool;
  c.v_compress = NsaCompression::kMlp;
  c.mlp_hidden_size = 6;
  c.num_mem_tokens = 1;
  c.compress_rope = NsaCompressRope::kPre;
  return c;
}

struct Fixture {
  std::shared_ptr<NsaAdapter> adapter = testing::random_nsa_adapter(small_shape(), small_config(), 7);
  Json config = testing::nsa_config_object(small_config());
  std::vector<NamedTensor> tensors = testing::nsa_tensors(*adapter);

  std::string json() const { return testing::nsa_json_document(config, tensors).dump(); }
  std::string safetensors() const { return testing::nsa_safetensors(&config, tensors); }
  NamedTensor* find(const std::string& name) {
    for (NamedTensor& t : tensors) {
      if (t.name == name) return &t;
    }
    ADD_FAILURE() << "no tensor " << name;
    return nullptr;
  }
  void erase(const std::string& name) {
    std::erase_if(tensors, [&](const NamedTensor& t) { return t.name == name; });
  }
};

void expect_same_weights(const NsaAdapter& a, const NsaAdapter& b) {
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) {
    const NsaLayerWeights &x = a.layers[i], &y = b.layers[i];
    EXPECT_EQ(x.k.pos_emb, y.k.pos_emb);
    EXPECT_EQ(x.v.pos_emb, y.v.pos_emb);
    EXPECT_EQ(x.v.w1, y.v.w1);
    EXPECT_EQ(x.v.b1, y.v.b1);
    EXPECT_EQ(x.v.w2, y.v.w2);
    EXPECT_EQ(x.v.b2, y.v.b2);
    EXPECT_EQ(x.mem_kv, y.mem_kv);
    EXPECT_EQ(x.gate_w, y.gate_w);
    EXPECT_EQ(x.gate_b, y.gate_b);
  }
}

void expect_rejected(const Result<std::shared_ptr<const NsaAdapter>>& r, std::initializer_list<std::string> parts) {
  ASSERT_FALSE(r.is_ok()) << "accepted; expected a message with '" << *parts.begin() << "'";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  for (const std::string& p : parts) {
    EXPECT_NE(r.status().message().find(p), std::string::npos) << "message: " << r.status().message() << "\nmissing: " << p;
  }
}

TEST(NsaAdapterCodec, JsonRoundTripsEveryTensorExactly) {
  Fixture f;
  const auto r = parse_nsa_adapter(f.json(), small_shape());
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  const NsaAdapter& a = *r.value();
  EXPECT_EQ(a.config, small_config());
  EXPECT_EQ(a.encoding, "json");
  EXPECT_EQ(a.num_kv_heads, 2);
  expect_same_weights(a, *f.adapter);
  EXPECT_TRUE(a.layers[0].k.w1.empty()) << "max_pool side holds no MLP";
}

TEST(NsaAdapterCodec, SafetensorsWithMixedDtypesAndPrefixesMatchesJson) {
  Fixture f;
  // Round the stored values first so both encodings hold the same numbers.
  int i = 0;
  for (NamedTensor& t : f.tensors) {
    t.dtype = i % 3 == 0 ? DType::kF32 : i % 3 == 1 ? DType::kF16 : DType::kBF16;
    for (float& x : t.data) x = t.dtype == DType::kF16 ? f16_to_f32(f32_to_f16(x)) : t.dtype == DType::kBF16 ? bf16_to_f32(f32_to_bf16(x)) : x;
    if (i % 2 == 1) {  // the other prefix on every other tensor
      const std::string rest = t.name.substr(std::string("model.layers.0.self_attn.nsa.").size());
      t.name = "sparse_adapters." + t.name.substr(13, 1) + "." + rest;
    }
    ++i;
  }
  Json config = f.config;
  config.erase("adapter_type");  // absent means nsa in adapter_config
  const std::string bytes = testing::nsa_safetensors(&config, f.tensors);
  ASSERT_TRUE(looks_like_safetensors(bytes));
  const auto st = parse_nsa_adapter(bytes, small_shape());
  ASSERT_TRUE(st.is_ok()) << st.status().message();
  EXPECT_EQ(st.value()->encoding, "safetensors");
  const auto js = parse_nsa_adapter(f.json(), small_shape());
  ASSERT_TRUE(js.is_ok()) << js.status().message();
  EXPECT_FALSE(looks_like_safetensors(f.json()));
  expect_same_weights(*st.value(), *js.value());
}

TEST(NsaAdapterCodec, DefaultsApplyAndUnknownKeysAreIgnored) {
  NsaConfig defaults;  // the spec's defaults; mlp_hidden_size defaults to l * d = 16 * 8
  defaults.mlp_hidden_size = 16 * 8;
  ModelShape shape = small_shape();
  shape.num_layers = 1;
  auto adapter = testing::random_nsa_adapter(shape, defaults, 3);
  Json config = {{"adapter_type", "nsa"}, {"future_option", {1, 2}}, {"model_name", "tiny"}};
  const auto r = parse_nsa_adapter(testing::nsa_json_document(config, testing::nsa_tensors(*adapter)).dump(), shape);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r.value()->config, defaults);
  EXPECT_EQ(r.value()->model_name, "tiny");
  EXPECT_NE(nsa_adapter_description(*r.value()).find("mlp_hidden_size 128"), std::string::npos);
}

TEST(NsaAdapterCodec, MlpHiddenSizeIsIgnoredWhenNoSideIsMlp) {
  NsaConfig c = small_config();
  c.v_compress = NsaCompression::kMaxPool;
  c.mlp_hidden_size = 0;
  auto adapter = testing::random_nsa_adapter(small_shape(), c, 5);
  Json config = testing::nsa_config_object(c);
  config["mlp_hidden_size"] = "not even a number";
  const auto r = parse_nsa_adapter(testing::nsa_json_document(config, testing::nsa_tensors(*adapter)).dump(), small_shape());
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r.value()->config.mlp_hidden_size, 0);
}

TEST(NsaAdapterCodec, MissingMlpBiasesAreZero) {
  Fixture f;
  f.erase("model.layers.1.self_attn.nsa.v_compress.compress_mlps.1.0.bias");
  f.erase("model.layers.0.self_attn.nsa.v_compress.compress_mlps.0.2.bias");
  const auto r = parse_nsa_adapter(f.json(), small_shape());
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  const NsaCompressor& v1 = r.value()->layers[1].v;
  for (int u = 0; u < 6; ++u) EXPECT_EQ(v1.b1[6 + u], 0.0f);
  for (int u = 0; u < 6; ++u) EXPECT_EQ(v1.b1[u], f.adapter->layers[1].v.b1[u]);
  for (int c = 0; c < 8; ++c) EXPECT_EQ(r.value()->layers[0].v.b2[c], 0.0f);
}

TEST(NsaAdapterCodec, JsonNumbersRoundToNearestFloat32) {
  Fixture f;
  Json doc = testing::nsa_json_document(f.config, f.tensors);
  doc["adapter_weight_dict"]["model.layers.0.self_attn.nsa.strategy_combiner.0.bias"]["data"][0] = 0.1;  // a double
  doc["adapter_weight_dict"]["model.layers.0.self_attn.nsa.strategy_combiner.0.bias"]["data"][1] = 3;    // an integer
  const auto r = parse_nsa_adapter(doc.dump(), small_shape());
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r.value()->layers[0].gate_b[0], 0.1f);
  EXPECT_EQ(r.value()->layers[0].gate_b[1], 3.0f);
}

// ---- rejections: every message names the key, the layer and expected vs actual ----

TEST(NsaAdapterCodecRejects, LayerBeyondTheModel) {
  Fixture f;
  NamedTensor extra = *f.find("model.layers.1.self_attn.nsa.compress_mem_kv");
  extra.name = "model.layers.2.self_attn.nsa.compress_mem_kv";
  f.tensors.push_back(extra);
  expect_rejected(parse_nsa_adapter(f.json(), small_shape()),
                  {"model.layers.2.self_attn.nsa.compress_mem_kv", "(layer 2)", "layer in 0..1", "got 2"});
}

TEST(NsaAdapterCodecRejects, MissingLayer) {
  Fixture f;
  std::erase_if(f.tensors, [](const NamedTensor& t) { return t.name.starts_with("model.layers.1."); });
  expect_rejected(parse_nsa_adapter(f.json(), small_shape()),
                  {"model.layers.1.self_attn.nsa.k_compress.pos_emb", "(layer 1)", "missing", "[2, 4, 8]"});
}

TEST(NsaAdapterCodecRejects, WrongKvHeadCount) {
  Fixture f;
  NamedTensor* t = f.find("model.layers.0.self_attn.nsa.k_compress.pos_emb");
  t->shape = {4, 4, 8};
  t->data.resize(4 * 4 * 8, 0.5f);
  expect_rejected(parse_nsa_adapter(f.json(), small_shape()),
                  {"k_compress.pos_emb'", "(layer 0)", "expected shape [2, 4, 8]", "num_key_value_heads", "got [4, 4, 8]"});
}

TEST(NsaAdapterCodecRejects, WrongQueryHeadCountInGate) {
  Fixture f;
  NamedTensor* t = f.find("model.layers.1.self_attn.nsa.strategy_combiner.0.weight");
  t->shape = {6, 16};
  t->data.resize(6 * 16);
  expect_rejected(parse_nsa_adapter(f.safetensors(), small_shape()),
                  {"strategy_combiner.0.weight'", "(layer 1)", "expected shape [12, 16]", "got [6, 16]"});
}

TEST(NsaAdapterCodecRejects, NaNInJsonData) {
  Fixture f;
  std::string doc = f.json();
  // Python's json.dump writes NaN; put it in place of the third gate bias of layer 1.
  const std::string key = "\"model.layers.1.self_attn.nsa.strategy_combiner.0.bias\":{\"shape\":[12],\"data\":[";
  const size_t at = doc.find(key);
  ASSERT_NE(at, std::string::npos);
  size_t pos = at + key.size();
  for (int commas = 0; commas < 2; ++pos) commas += doc[pos] == ',';
  const size_t stop = doc.find(',', pos);
  doc.replace(pos, stop - pos, "NaN");
  expect_rejected(parse_nsa_adapter(doc, small_shape()),
                  {"strategy_combiner.0.bias'", "(layer 1)", "data element 2", "finite", "NaN"});
}

TEST(NsaAdapterCodecRejects, NaNInSafetensorsData) {
  Fixture f;
  f.find("model.layers.0.self_attn.nsa.v_compress.compress_mlps.1.2.weight")->data[5] = std::nanf("");
  expect_rejected(parse_nsa_adapter(f.safetensors(), small_shape()),
                  {"v_compress.compress_mlps.1.2.weight'", "(layer 0)", "element 5 is NaN", "finite"});
}

TEST(NsaAdapterCodecRejects, InfinityInBf16Data) {
  Fixture f;
  NamedTensor* t = f.find("model.layers.1.self_attn.nsa.compress_mem_kv");
  t->dtype = DType::kBF16;
  t->data[3] = -INFINITY;
  expect_rejected(parse_nsa_adapter(f.safetensors(), small_shape()), {"compress_mem_kv'", "(layer 1)", "element 3 is -Infinity"});
}

TEST(NsaAdapterCodecRejects, JsonNumberThatOverflowsFloat32) {
  Fixture f;
  Json doc = testing::nsa_json_document(f.config, f.tensors);
  doc["adapter_weight_dict"]["model.layers.0.self_attn.nsa.compress_mem_kv"]["data"][1] = 1e39;
  expect_rejected(parse_nsa_adapter(doc.dump(), small_shape()),
                  {"compress_mem_kv'", "(layer 0)", "data element 1", "not a finite float32"});
}

TEST(NsaAdapterCodecRejects, UnknownAdapterType) {
  Fixture f;
  f.config["adapter_type"] = "sparse";
  expect_rejected(parse_nsa_adapter(f.json(), small_shape()), {"'adapter_type'", "unknown adapter type", "\"sparse\"", "\"nsa\""});
  f.config["adapter_type"] = "mixed";
  expect_rejected(parse_nsa_adapter(f.json(), small_shape()), {"'adapter_type'", "expected \"nsa\"", "mixed"});
  f.config.erase("adapter_type");
  expect_rejected(parse_nsa_adapter(f.json(), small_shape()), {"'adapter_type'", "missing"});
  f.config["adapter_type"] = "mixed";
  expect_rejected(parse_nsa_adapter(f.safetensors(), small_shape()), {"adapter_config key 'adapter_type'", "mixed"});
}

TEST(NsaAdapterCodecRejects, MissingTensors) {
  Fixture f;
  f.erase("model.layers.1.self_attn.nsa.compress_mem_kv");
  expect_rejected(parse_nsa_adapter(f.json(), small_shape()),
                  {"model.layers.1.self_attn.nsa.compress_mem_kv", "(layer 1)", "missing", "[2, 2, 1, 8]"});
  Fixture g;
  g.erase("model.layers.0.self_attn.nsa.v_compress.compress_mlps.1.0.weight");
  expect_rejected(parse_nsa_adapter(g.safetensors(), small_shape()),
                  {"v_compress.compress_mlps.1.0.weight", "(layer 0)", "missing", "[6, 32]"});
  Fixture h;
  h.erase("model.layers.0.self_attn.nsa.strategy_combiner.0.bias");
  expect_rejected(parse_nsa_adapter(h.json(), small_shape()), {"strategy_combiner.0.bias", "(layer 0)", "missing", "[12]"});
}

TEST(NsaAdapterCodecRejects, MlpTensorsOnAMaxPoolSide) {
  Fixture f;
  NamedTensor t = *f.find("model.layers.0.self_attn.nsa.v_compress.compress_mlps.0.0.weight");
  t.name = "model.layers.0.self_attn.nsa.k_compress.compress_mlps.0.0.weight";
  f.tensors.push_back(t);
  expect_rejected(parse_nsa_adapter(f.json(), small_shape()),
                  {"k_compress.compress_mlps.0.0.weight'", "(layer 0)", "k_compress is \"max_pool\""});
}

TEST(NsaAdapterCodecRejects, MlpHeadBeyondKvHeads) {
  Fixture f;
  NamedTensor t = *f.find("model.layers.1.self_attn.nsa.v_compress.compress_mlps.1.2.bias");
  t.name = "sparse_adapters.1.v_compress.compress_mlps.2.2.bias";
  f.tensors.push_back(t);
  expect_rejected(parse_nsa_adapter(f.json(), small_shape()),
                  {"sparse_adapters.1.v_compress.compress_mlps.2.2.bias", "(layer 1)", "head in 0..1", "got 2"});
}

TEST(NsaAdapterCodecRejects, ExtraTensors) {
  Fixture f;
  f.tensors.push_back({"model.layers.0.self_attn.nsa.router.weight", {2}, {1, 2}});
  expect_rejected(parse_nsa_adapter(f.json(), small_shape()),
                  {"'model.layers.0.self_attn.nsa.router.weight' (layer 0)", "not a tensor of an nsa adapter"});
  Fixture g;
  g.tensors.push_back({"model.layers.01.self_attn.nsa.compress_mem_kv", {2, 2, 1, 8}, std::vector<float>(32)});
  expect_rejected(parse_nsa_adapter(g.safetensors(), small_shape()), {"model.layers.01.", "not a tensor of an nsa adapter"});
}

TEST(NsaAdapterCodecRejects, SameTensorUnderBothPrefixes) {
  Fixture f;
  NamedTensor t = *f.find("model.layers.1.self_attn.nsa.v_compress.pos_emb");
  t.name = "sparse_adapters.1.v_compress.pos_emb";
  f.tensors.push_back(t);
  const std::string both = "the same tensor as key";
  expect_rejected(parse_nsa_adapter(f.json(), small_shape()),
                  {"sparse_adapters.1.v_compress.pos_emb'", "(layer 1)", both, "model.layers.1.self_attn.nsa.v_compress.pos_emb"});
  // safetensors orders names; whichever comes second is the one named.
  expect_rejected(parse_nsa_adapter(f.safetensors(), small_shape()), {"(layer 1)", both});
}

TEST(NsaAdapterCodecRejects, BadSafetensorsHeader) {
  expect_rejected(parse_nsa_adapter_safetensors(testing::raw_safetensors("{\"a\": [1, 2", ""), small_shape()),
                  {"safetensors header is not a JSON object"});
  std::string truncated = Fixture().safetensors();
  uint64_t huge = 1ull << 40;
  std::memcpy(truncated.data(), &huge, 8);
  expect_rejected(parse_nsa_adapter_safetensors(truncated, small_shape()), {"header length", "exceeds the file size"});
  expect_rejected(parse_nsa_adapter_safetensors("tiny", small_shape()), {"shorter than"});
}

TEST(NsaAdapterCodecRejects, HugeDeclaredSizes) {
  // A shape of 2^40 x 2^40 elements backed by 8 bytes: rejected before any allocation.
  const std::string header =
      "{\"__metadata__\": {\"adapter_config\": \"{}\"}, \"sparse_adapters.0.compress_mem_kv\": {\"dtype\": \"F32\", "
      "\"shape\": [1099511627776, 1099511627776], \"data_offsets\": [0, 8]}}";
  expect_rejected(parse_nsa_adapter(testing::raw_safetensors(header, std::string(8, '\0')), small_shape()),
                  {"sparse_adapters.0.compress_mem_kv", "shape"});
  Fixture f;
  Json doc = testing::nsa_json_document(f.config, f.tensors);
  doc["adapter_weight_dict"]["model.layers.0.self_attn.nsa.compress_mem_kv"]["shape"] = {1u << 30, 1u << 30, 1u << 30, 1u << 30};
  expect_rejected(parse_nsa_adapter(doc.dump(), small_shape()),
                  {"compress_mem_kv'", "(layer 0)", "expected shape [2, 2, 1, 8]", "got [1073741824"});
}

TEST(NsaAdapterCodecRejects, DataLengthDisagreesWithShape) {
  Fixture f;
  Json doc = testing::nsa_json_document(f.config, f.tensors);
  doc["adapter_weight_dict"]["model.layers.1.self_attn.nsa.strategy_combiner.0.bias"]["data"].erase(0);
  expect_rejected(parse_nsa_adapter(doc.dump(), small_shape()),
                  {"strategy_combiner.0.bias'", "(layer 1)", "'data' has 11 numbers; expected 12"});
}

TEST(NsaAdapterCodecRejects, MissingAdapterConfigMetadata) {
  Fixture f;
  expect_rejected(parse_nsa_adapter_safetensors(testing::nsa_safetensors(nullptr, f.tensors), small_shape()),
                  {"__metadata__ key 'adapter_config'", "missing"});
  Json with_dict = f.config;
  with_dict["adapter_weight_dict"] = Json::object();
  expect_rejected(parse_nsa_adapter(testing::nsa_safetensors(&with_dict, f.tensors), small_shape()),
                  {"adapter_weight_dict", "not allowed"});
}

TEST(NsaAdapterCodecRejects, ConfigRules) {
  struct Case {
    const char* key;
    Json value;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {"compress_block_size", 16.0, {"'compress_block_size'", "JSON integer", "got 16.0"}},
      {"compress_block_size", "16", {"'compress_block_size'", "JSON integer", "string \"16\""}},
      {"compress_stride", 8, {"'compress_stride'", "<= compress_block_size (4)", "got 8"}},
      {"selection_block_size", 3, {"'selection_block_size'", "multiple of compress_stride (2)", "got 3"}},
      {"num_selected_blocks", 0, {"'num_selected_blocks'", "[1, ", "got 0"}},
      {"sliding_window_size", -4, {"'sliding_window_size'", "got -4"}},
      {"num_mem_tokens", -1, {"'num_mem_tokens'", "[0, ", "got -1"}},
      {"mlp_hidden_size", 0, {"'mlp_hidden_size'", "got 0"}},
      {"k_compress", "avg_pool", {"'k_compress'", "\"max_pool\" or \"mlp\"", "avg_pool"}},
      {"compress_rope", "middle", {"'compress_rope'", "\"pre\" or \"post\"", "middle"}},
      {"compress_block_size", true, {"'compress_block_size'", "boolean true"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.key) + " = " + c.value.dump());
    Fixture f;
    f.config[c.key] = c.value;
    const auto r = parse_nsa_adapter(f.json(), small_shape());
    ASSERT_FALSE(r.is_ok());
    for (const std::string& p : c.parts) EXPECT_NE(r.status().message().find(p), std::string::npos) << r.status().message();
    // The same rule in the safetensors encoding names the adapter_config key.
    const auto s = parse_nsa_adapter(f.safetensors(), small_shape());
    ASSERT_FALSE(s.is_ok());
    EXPECT_NE(s.status().message().find(std::string("adapter_config key '") + c.key + "'"), std::string::npos)
        << s.status().message();
  }
}

TEST(NsaAdapterCodecRejects, WrongSafetensorsDtype) {
  Fixture f;
  const std::string header =
      "{\"__metadata__\": {\"adapter_config\": " + Json(f.config.dump()).dump() +
      "}, \"sparse_adapters.0.strategy_combiner.0.bias\": {\"dtype\": \"I32\", \"shape\": [12], \"data_offsets\": [0, 48]}}";
  expect_rejected(parse_nsa_adapter(testing::raw_safetensors(header, std::string(48, '\0')), small_shape()),
                  {"sparse_adapters.0.strategy_combiner.0.bias", "(layer 0)", "dtype I32", "F32, F16 or BF16"});
}

TEST(NsaAdapterCodecRejects, MalformedJsonDocuments) {
  Fixture f;
  Json doc = testing::nsa_json_document(f.config, f.tensors);
  doc["adapter_weight_dict"]["model.layers.0.self_attn.nsa.compress_mem_kv"]["data"][4] = "x";
  expect_rejected(parse_nsa_adapter(doc.dump(), small_shape()),
                  {"compress_mem_kv'", "(layer 0)", "data element 4 must be a number", "string \"x\""});
  // A key repeated in one object (nlohmann would keep the last one silently).
  std::string dup = f.json();
  dup.insert(1, "\"compress_stride\": 2, ");
  expect_rejected(parse_nsa_adapter(dup, small_shape()), {"'compress_stride'", "appears twice"});
  expect_rejected(parse_nsa_adapter("[1, 2]", small_shape()), {"must be a JSON object", "a list"});
  expect_rejected(parse_nsa_adapter("{\"adapter_type\": \"nsa\"", small_shape()), {"not valid JSON"});
  Json no_dict = f.config;
  expect_rejected(parse_nsa_adapter(no_dict.dump(), small_shape()), {"'adapter_weight_dict'", "missing"});
  Json bad_entry = testing::nsa_json_document(f.config, f.tensors);
  bad_entry["adapter_weight_dict"]["model.layers.0.self_attn.nsa.compress_mem_kv"].erase("shape");
  expect_rejected(parse_nsa_adapter(bad_entry.dump(), small_shape()), {"compress_mem_kv'", "(layer 0)", "'shape'"});
  Json nested = testing::nsa_json_document(f.config, f.tensors);
  nested["adapter_weight_dict"]["model.layers.0.self_attn.nsa.compress_mem_kv"]["data"][0] = {1, 2};
  expect_rejected(parse_nsa_adapter(nested.dump(), small_shape()), {"compress_mem_kv'", "data element 0", "flat"});
}

}  // namespace
}  // namespace hotswap
