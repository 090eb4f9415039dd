// parse_hashattention_adapter (adapters/hashattention_adapter_codec.h): valid documents in
// every float dtype, and a table of bad documents each rejected with its own message.
#include "adapters/hashattention_adapter_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "adapters/adapter.h"
#include "adapters/lsh_adapter_codec.h"
#include "hash_lsh_docs.h"

namespace hotswap {
namespace {

using testing::BadCase;
using testing::expect_each_rejected;
using testing::erase_tensor;
using testing::find_tensor;
using testing::hash_metadata;
using testing::hash_tensors;
using testing::st_image;
using testing::StTensor;
using testing::StTensors;
using ::testing::HasSubstr;

// L = 2, H = 4, Hkv = 2, d = 8.
ModelShape shape() {
  ModelShape s;
  s.num_layers = 2;
  s.num_heads = 4;
  s.num_kv_heads = 2;
  s.head_dim = 8;
  s.hidden_size = 32;
  return s;
}

// query MLP 8 -> 32 -> 16, key MLP 8 -> 16.
StTensors good_tensors(const std::string& dtype = "F32") { return hash_tensors(shape(), {8, 32, 16}, {8, 16}, 3, dtype); }

std::shared_ptr<const HashAttentionAdapter> parse_ok(const std::string& doc) {
  auto r = parse_hashattention_adapter(doc, shape());
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  return r.is_ok() ? r.value() : nullptr;
}

TEST(HashAttentionAdapterCodec, ValidDocumentRoundTripsInEveryFloatDtype) {
  for (const char* dtype : {"F32", "BF16", "F16"}) {
    SCOPED_TRACE(dtype);
    StTensors t = good_tensors(dtype);
    auto a = parse_ok(st_image(hash_metadata("gelu"), t));
    ASSERT_TRUE(a);
    EXPECT_EQ(a->num_layers, 2);
    EXPECT_EQ(a->num_heads, 4);
    EXPECT_EQ(a->head_dim, 8);
    EXPECT_EQ(a->bits, 16);
    EXPECT_EQ(a->activation, HashActivation::kGelu);
    ASSERT_EQ(a->layers.size(), 2u);
    for (int l = 0; l < 2; ++l) {
      const auto& layer = a->layers[static_cast<size_t>(l)];
      ASSERT_EQ(layer.query.size(), 2u);
      ASSERT_EQ(layer.key.size(), 1u);
      EXPECT_EQ(layer.query[0].d_in, 8);
      EXPECT_EQ(layer.query[0].d_out, 32);
      EXPECT_EQ(layer.query[1].d_in, 32);
      EXPECT_EQ(layer.query[1].d_out, 16);
      EXPECT_EQ(layer.key[0].d_in, 8);
      EXPECT_EQ(layer.key[0].d_out, 16);
      const std::string p = "layers." + std::to_string(l) + ".";
      // The seeded values are multiples of 1/64, exact in every dtype.
      EXPECT_EQ(layer.query[0].weight, find_tensor(t, p + "query.0.weight").values);
      EXPECT_EQ(layer.query[1].bias, find_tensor(t, p + "query.1.bias").values);
      EXPECT_EQ(layer.key[0].weight, find_tensor(t, p + "key.0.weight").values);
      EXPECT_EQ(layer.key[0].bias, find_tensor(t, p + "key.0.bias").values);
    }
    EXPECT_EQ(a->num_parameters(), 2u * (4 * (8 * 32 + 32 + 32 * 16 + 16) + 4 * (8 * 16 + 16)));
  }
}

TEST(HashAttentionAdapterCodec, DtypesMixAndActivationsParseAndExtraMetadataIsIgnored) {
  StTensors t = good_tensors();
  find_tensor(t, "layers.1.query.0.weight") = testing::seeded({4, 8, 32}, 9, "BF16");
  find_tensor(t, "layers.0.key.0.bias") = testing::seeded({4, 16}, 9, "F16");
  for (const char* act : {"relu", "silu", "gelu", "tanh"}) {
    auto meta = hash_metadata(act);
    meta["source"] = "converted from a pickle";
    auto a = parse_ok(st_image(meta, t));
    ASSERT_TRUE(a);
    EXPECT_STREQ(hash_activation_name(a->activation), act);
  }
}

std::string read_source_file(const std::string& relative) {
  std::ifstream in(std::string(HOTSWAP_SOURCE_DIR) + "/" + relative, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The fuzz seeds were written by scripts/convert_hashattention_pickle.py (F32, BF16, F16, with
// an 8-byte aligned, space-padded header): what the converter writes, the codecs accept.
TEST(HashAttentionAdapterCodec, DocumentsWrittenByTheConverterParse) {
  const std::string dir = "tests/fuzz/corpus/hashattention_adapter/";
  for (const char* f : {"hashattention_f32.safetensors", "hashattention_bf16.safetensors"}) {
    SCOPED_TRACE(f);
    const std::string bytes = read_source_file(dir + f);
    ASSERT_FALSE(bytes.empty());
    auto a = parse_ok(bytes);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->bits, 8);
    EXPECT_EQ(a->layers[1].query.size(), 2u);
    EXPECT_EQ(a->layers[1].query[0].d_out, 12);
    EXPECT_EQ(a->layers[1].key.size(), 1u);
    EXPECT_TRUE(std::all_of(a->layers[0].key[0].bias.begin(), a->layers[0].key[0].bias.end(),
                            [](float x) { return x == 0.0f; }))
        << "the pickle had no key_bias: zeros";
  }
  for (const char* f : {"lsh_f32.safetensors", "lsh_f16.safetensors"}) {
    SCOPED_TRACE(f);
    ModelShape s = shape();
    auto r = parse_lsh_adapter(read_source_file(dir + f), s);
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    EXPECT_EQ(r.value()->rows, 9);
    EXPECT_EQ(r.value()->columns, 16);
  }
}

TEST(HashAttentionAdapterCodec, ActivationsAreTorchs) {
  EXPECT_EQ(apply_hash_activation(HashActivation::kRelu, -1.5f), 0.0f);
  EXPECT_EQ(apply_hash_activation(HashActivation::kRelu, 2.5f), 2.5f);
  EXPECT_NEAR(apply_hash_activation(HashActivation::kSilu, 1.0f), 0.7310585786f, 1e-6);
  EXPECT_NEAR(apply_hash_activation(HashActivation::kSilu, -2.0f), -0.2384058440f, 1e-6);
  EXPECT_NEAR(apply_hash_activation(HashActivation::kGelu, 1.0f), 0.8413447461f, 1e-6);
  EXPECT_NEAR(apply_hash_activation(HashActivation::kGelu, -0.5f), -0.1542687694f, 1e-6);
  EXPECT_NEAR(apply_hash_activation(HashActivation::kTanh, 0.5f), 0.4621171573f, 1e-6);
}

// silu's exponential is our own (vectorised) one: within 2 float steps of x / (1 + e^-x)
// computed in double wherever float's 1 + e^-x is finite (below x = -88.72 it overflows, and
// silu gives -0 as torch's and glibc's do), and a layer's outputs at once bit for bit the same
// as one at a time.
TEST(HashAttentionAdapterCodec, SiluIsWithinTwoUlpsAndTheSameOneAtATime) {
  std::vector<float> xs;
  for (float x = -88.7f; x <= 100.0f; x += 0.0137f) xs.push_back(x);
  for (float x : {0.0f, -0.0f, 1e-30f, -1e-30f, 88.0f, -86.0f, -87.5f, -88.5f, -88.72f, 1e30f}) xs.push_back(x);
  std::vector<float> all = xs;
  apply_hash_activation(HashActivation::kSilu, all.data(), all.size());
  int worst = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const float x = xs[i];
    const float one = apply_hash_activation(HashActivation::kSilu, x);
    ASSERT_EQ(std::bit_cast<uint32_t>(one), std::bit_cast<uint32_t>(all[i])) << "x = " << x;
    const float want = static_cast<float>(static_cast<double>(x) / (1.0 + std::exp(-static_cast<double>(x))));
    const int ulps = std::abs(std::bit_cast<int32_t>(one) - std::bit_cast<int32_t>(want));
    worst = std::max(worst, ulps);
    EXPECT_LE(ulps, 2) << "x = " << x << ": " << one << " against " << want;
  }
  EXPECT_EQ(apply_hash_activation(HashActivation::kSilu, 1e30f), 1e30f);
  for (float x : {-88.8f, -89.0f, -100.0f, -1e30f}) EXPECT_EQ(apply_hash_activation(HashActivation::kSilu, x), 0.0f);
  EXPECT_TRUE(std::isnan(apply_hash_activation(HashActivation::kSilu, std::nanf(""))));
  std::printf("silu: worst %d ulp over %zu points\n", worst, xs.size());
}

TEST(HashAttentionAdapterCodec, AdapterDescribesItself) {
  auto params = parse_ok(st_image(hash_metadata(), good_tensors()));
  ASSERT_TRUE(params);
  auto a = Adapter::make_hashattention("hat", "abc", 123, params);
  EXPECT_EQ(a->type(), AdapterType::kHashAttention);
  EXPECT_STREQ(adapter_type_name(a->type()), "hashattention");
  EXPECT_EQ(a->hashattention(), params);
  EXPECT_EQ(a->lsh(), nullptr);
  EXPECT_EQ(a->nsa(), nullptr);
  EXPECT_EQ(a->mixed(), nullptr);
  EXPECT_EQ(a->num_layers(), 2);
  EXPECT_EQ(a->description(),
            "hashattention adapter 'hat': 2 layers, 4 heads, 16 bits, query MLP 8->32->16, key MLP 8->16, activation silu");
  EXPECT_EQ(a->parameters_json(),
            R"({"layers":2,"heads":4,"bits":16,"activation":"silu","query_widths":[8,32,16],"key_widths":[8,16]})");
}

// A raw safetensors image with one hand-written header.
std::string raw_image(const std::string& header, size_t data_bytes) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + std::string(data_bytes, '\0');
}

std::function<std::string()> edited(std::function<void(StTensors&)> edit, std::string activation = "silu") {
  return [edit, activation] {
    StTensors t = good_tensors();
    edit(t);
    return st_image(hash_metadata(activation), t);
  };
}

TEST(HashAttentionAdapterCodec, EachBadDocumentGetsItsOwnMessage) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<BadCase> cases = {
      {"missing layer 1",
       edited([](StTensors& t) { std::erase_if(t, [](const auto& p) { return p.first.starts_with("layers.1."); }); }),
       "layer 1: no query MLP; expected tensors 'layers.1.query.{i}.weight' [num_attention_heads, d_in, d_out] and "
       "'layers.1.query.{i}.bias' [num_attention_heads, d_out], i = 0..n-1, in every layer 0..1 (num_hidden_layers 2)"},
      {"key side missing", edited([](StTensors& t) { erase_tensor(t, "layers.0.key.0.weight"); erase_tensor(t, "layers.0.key.0.bias"); }),
       "layer 0: no key MLP", false},
      {"extra layer 2", edited([](StTensors& t) { t.emplace_back("layers.2.query.0.weight", testing::seeded({4, 8, 16}, 1)); }),
       "tensor 'layers.2.query.0.weight' (layer 2): layer out of range; expected a layer in 0..1 (num_hidden_layers 2), "
       "got 2"},
      {"wrong head count", edited([](StTensors& t) { find_tensor(t, "layers.1.key.0.weight") = testing::seeded({3, 8, 16}, 1); }),
       "tensor 'layers.1.key.0.weight' (layer 1): expected shape [4, 8, d_out] (dimension 0 = num_attention_heads 4), "
       "got [3, 8, 16]"},
      {"first d_in is not head_dim",
       [] { return st_image(hash_metadata(), hash_tensors(shape(), {16, 32, 16}, {8, 16})); },
       "tensor 'layers.0.query.0.weight' (layer 0): expected shape [4, 8, d_out] (d_in of the first MLP layer = "
       "head_dim 8), got [4, 16, 32]"},
      {"broken chain", edited([](StTensors& t) { find_tensor(t, "layers.0.query.1.weight") = testing::seeded({4, 16, 16}, 1); }),
       "tensor 'layers.0.query.1.weight' (layer 0): expected shape [4, 32, d_out] (d_in = d_out 32 of "
       "'layers.0.query.0.weight'), got [4, 16, 16]"},
      {"weight of rank 2", edited([](StTensors& t) { find_tensor(t, "layers.0.query.0.weight") = testing::seeded({4, 256}, 1); }),
       "tensor 'layers.0.query.0.weight' (layer 0): expected shape [4, 8, d_out] ([num_attention_heads, d_in, d_out], "
       "3 dimensions), got [4, 256]"},
      {"bias shape wrong", edited([](StTensors& t) { find_tensor(t, "layers.0.query.0.bias") = testing::seeded({4, 16}, 1); }),
       "tensor 'layers.0.query.0.bias' (layer 0): expected shape [4, 32] ([num_attention_heads, d_out] of "
       "'layers.0.query.0.weight'), got [4, 16]"},
      {"bias missing", edited([](StTensors& t) { erase_tensor(t, "layers.1.query.1.bias"); }),
       "tensor 'layers.1.query.1.bias' (layer 1): missing; expected shape [4, 16] ([num_attention_heads, d_out]) beside "
       "'layers.1.query.1.weight'"},
      {"weight missing beside its bias", edited([](StTensors& t) { erase_tensor(t, "layers.1.query.1.weight"); }),
       "tensor 'layers.1.query.1.weight' (layer 1): missing; expected a weight of shape [4, 32, d_out] "
       "([num_attention_heads, d_in, d_out]) beside 'layers.1.query.1.bias'"},
      {"gap in MLP indices",
       edited([](StTensors& t) { erase_tensor(t, "layers.0.query.0.weight"); erase_tensor(t, "layers.0.query.0.bias"); }),
       "tensor 'layers.0.query.0.weight' (layer 0): missing; expected the query MLP layers to be numbered 0..n-1 "
       "without a gap (found 'layers.0.query.1.weight')"},
      {"more than 64 bits", [] { return st_image(hash_metadata(), hash_tensors(shape(), {8, 65}, {8, 65})); },
       "tensor 'layers.0.query.0.weight' (layer 0): the last query MLP layer's d_out is the signature bits; expected "
       "1..64, got 65"},
      {"bits differ between query and key", [] { return st_image(hash_metadata(), hash_tensors(shape(), {8, 32, 16}, {8, 32})); },
       "tensor 'layers.0.key.0.weight' (layer 0): signature bits (the last d_out) 32 differ from 16 of "
       "'layers.0.query.1.weight'; expected the query and key MLPs of every layer to end in the same bits"},
      {"bits differ between layers", edited([](StTensors& t) {
         find_tensor(t, "layers.1.key.0.weight") = testing::seeded({4, 8, 8}, 1);
         find_tensor(t, "layers.1.key.0.bias") = testing::seeded({4, 8}, 1);
       }),
       "tensor 'layers.1.key.0.weight' (layer 1): signature bits (the last d_out) 8 differ from 16", false},
      {"d_out 0", edited([](StTensors& t) {
         find_tensor(t, "layers.0.key.0.weight") = testing::seeded({4, 8, 0}, 1);
       }),
       "tensor 'layers.0.key.0.weight' (layer 0): d_out (dimension 2) out of range; expected 1..65536, got [4, 8, 0]"},
      {"NaN", edited([nan](StTensors& t) { find_tensor(t, "layers.1.key.0.weight").values[5] = nan; }),
       "tensor 'layers.1.key.0.weight' (layer 1): element 5 is NaN; expected finite values"},
      {"-Infinity in BF16", edited([inf](StTensors& t) {
         StTensor& b = find_tensor(t, "layers.0.query.1.bias");
         b.dtype = "BF16";
         b.values[7] = -inf;
       }),
       "tensor 'layers.0.query.1.bias' (layer 0): element 7 is -Infinity; expected finite values"},
      {"Infinity in F16 by overflow", edited([](StTensors& t) {
         StTensor& w = find_tensor(t, "layers.0.query.0.weight");
         w.dtype = "F16";
         w.values[0] = 1e6f;  // beyond F16's 65504: rounds to +Infinity
       }),
       "tensor 'layers.0.query.0.weight' (layer 0): element 0 is Infinity; expected finite values"},
      {"I32 dtype", edited([](StTensors& t) { find_tensor(t, "layers.0.query.0.bias").dtype = "I32"; }),
       "tensor 'layers.0.query.0.bias' (layer 0): dtype I32; expected F32, F16 or BF16"},
      {"unknown tensor", edited([](StTensors& t) { t.emplace_back("layers.0.value.0.weight", testing::seeded({4, 8, 16}, 1)); }),
       "tensor 'layers.0.value.0.weight': not a tensor of a hashattention adapter; expected "
       "'layers.{L}.query.{i}.weight', 'layers.{L}.query.{i}.bias' or the same under 'key'"},
      {"non-canonical layer index", edited([](StTensors& t) { t.emplace_back("layers.01.query.0.weight", testing::seeded({4, 8, 16}, 1)); }),
       "tensor 'layers.01.query.0.weight': not a tensor of a hashattention adapter", false},
      {"missing activation", [] { return st_image({{"type", "hashattention"}}, good_tensors()); },
       "__metadata__ key 'activation': missing; expected one of \"relu\", \"silu\", \"gelu\", \"tanh\""},
      {"bad activation", edited([](StTensors&) {}, "swish"),
       "__metadata__ key 'activation': expected one of \"relu\", \"silu\", \"gelu\", \"tanh\", got 'swish'"},
      {"missing type", [] { return st_image({{"activation", "silu"}}, good_tensors()); },
       "__metadata__ key 'type': missing; expected \"hashattention\""},
      {"wrong type", [] { return st_image({{"type", "lsh"}, {"activation", "silu"}}, good_tensors()); },
       "__metadata__ key 'type': expected \"hashattention\", got 'lsh'"},
      {"huge declared sizes",
       [] {
         return raw_image(R"({"__metadata__":{"type":"hashattention","activation":"silu"},"layers.0.query.0.weight":)"
                          R"({"dtype":"F32","shape":[100000000,100000000,8],"data_offsets":[0,320000000000000000]}})",
                          64);
       },
       "'layers.0.query.0.weight'", false},
      {"offsets beyond the file",
       [] {
         return raw_image(R"({"__metadata__":{"type":"hashattention","activation":"silu"},"layers.0.query.0.weight":)"
                          R"({"dtype":"F32","shape":[4,8,16],"data_offsets":[0,2048]}})",
                          64);
       },
       "outside the data region of 64 bytes", false},
      {"header length beyond the file", [] { return std::string("\xff\xff\xff\x00\x00\x00\x00\x00{}", 10); },
       "exceeds the file size 10", false},
      {"empty body", [] { return std::string(); }, "shorter than its 8-byte header length", false},
  };
  ASSERT_GE(cases.size(), 15u);
  expect_each_rejected(cases, [](const std::string& doc) { return parse_hashattention_adapter(doc, shape()); });
}

}  // namespace
}  // namespace hotswap
