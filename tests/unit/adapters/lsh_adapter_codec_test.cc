// parse_lsh_adapter (adapters/lsh_adapter_codec.h): valid documents in every float dtype, and
// a table of bad documents each rejected with its own message.
#include "adapters/lsh_adapter_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "adapters/adapter.h"
#include "hash_lsh_docs.h"

namespace hotswap {
namespace {

using testing::BadCase;
using testing::expect_each_rejected;
using testing::erase_tensor;
using testing::find_tensor;
using testing::lsh_tensors;
using testing::st_image;
using testing::StTensors;
using ::testing::HasSubstr;

// L = 3, H = 4, Hkv = 2, d = 8: projections are [9, C].
ModelShape shape() {
  ModelShape s;
  s.num_layers = 3;
  s.num_heads = 4;
  s.num_kv_heads = 2;
  s.head_dim = 8;
  s.hidden_size = 32;
  return s;
}

TEST(LshAdapterCodec, ValidDocumentRoundTripsInEveryFloatDtype) {
  for (const char* dtype : {"F32", "BF16", "F16"}) {
    SCOPED_TRACE(dtype);
    const StTensors t = lsh_tensors(shape(), 24, 5, dtype);
    auto r = parse_lsh_adapter(st_image({{"type", "lsh"}, {"note", "ignored"}}, t), shape());
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    const LshAdapter& a = *r.value();
    EXPECT_EQ(a.num_layers, 3);
    EXPECT_EQ(a.rows, 9);
    EXPECT_EQ(a.columns, 24);
    ASSERT_EQ(a.projection.size(), 3u);
    for (int l = 0; l < 3; ++l) {
      EXPECT_EQ(a.projection[static_cast<size_t>(l)], t[static_cast<size_t>(l)].second.values);
    }
    EXPECT_EQ(a.num_parameters(), 3u * 9 * 24);
  }
}

TEST(LshAdapterCodec, AdapterDescribesItself) {
  auto r = parse_lsh_adapter(testing::lsh_doc(shape(), 64), shape());
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  auto a = Adapter::make_lsh("proj", "abc", 1, r.value());
  EXPECT_EQ(a->type(), AdapterType::kLsh);
  EXPECT_STREQ(adapter_type_name(a->type()), "lsh");
  EXPECT_EQ(a->lsh(), r.value());
  EXPECT_EQ(a->hashattention(), nullptr);
  EXPECT_EQ(a->num_layers(), 3);
  EXPECT_EQ(a->description(), "lsh adapter 'proj': 3 layers, projection [9, 64] per layer (lsh_l * lsh_k = 64)");
  EXPECT_EQ(a->parameters_json(), R"({"layers":3,"rows":9,"columns":64})");
}

std::string raw_image(const std::string& header, size_t data_bytes) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + std::string(data_bytes, '\0');
}

std::function<std::string()> edited(std::function<void(StTensors&)> edit) {
  return [edit] {
    StTensors t = lsh_tensors(shape(), 16);
    edit(t);
    return st_image({{"type", "lsh"}}, t);
  };
}

TEST(LshAdapterCodec, EachBadDocumentGetsItsOwnMessage) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<BadCase> cases = {
      {"wrong rows", edited([](StTensors& t) { find_tensor(t, "layers.1.projection") = testing::seeded({8, 16}, 1); }),
       "tensor 'layers.1.projection' (layer 1): expected shape [9, C] ([head_dim + 1, lsh_l * lsh_k] with head_dim 8), "
       "got [8, 16]"},
      {"three dimensions", edited([](StTensors& t) { find_tensor(t, "layers.0.projection") = testing::seeded({9, 4, 4}, 1); }),
       "tensor 'layers.0.projection' (layer 0): expected shape [9, C] ([head_dim + 1, lsh_l * lsh_k] with head_dim 8), "
       "got [9, 4, 4]"},
      {"columns differ between layers",
       edited([](StTensors& t) { find_tensor(t, "layers.2.projection") = testing::seeded({9, 32}, 1); }),
       "tensor 'layers.2.projection' (layer 2): expected shape [9, 16] (the same lsh_l * lsh_k columns as "
       "'layers.0.projection'), got [9, 32]"},
      {"zero columns", [] { return st_image({{"type", "lsh"}}, lsh_tensors(shape(), 0)); },
       "tensor 'layers.0.projection' (layer 0): columns (lsh_l * lsh_k) out of range; expected 1..65536, got [9, 0]"},
      {"missing layer", edited([](StTensors& t) { erase_tensor(t, "layers.1.projection"); }),
       "tensor 'layers.1.projection' (layer 1): missing; expected a projection of shape [9, C] ([head_dim + 1, lsh_l * "
       "lsh_k]) for every layer 0..2 (num_hidden_layers 3)"},
      {"extra layer", edited([](StTensors& t) { t.emplace_back("layers.3.projection", testing::seeded({9, 16}, 1)); }),
       "tensor 'layers.3.projection' (layer 3): layer out of range; expected a layer in 0..2 (num_hidden_layers 3), got 3"},
      {"unknown tensor", edited([](StTensors& t) { t.emplace_back("layers.0.projection.bias", testing::seeded({16}, 1)); }),
       "tensor 'layers.0.projection.bias': not a tensor of an lsh adapter; expected 'layers.{L}.projection' for L in "
       "0..2 (num_hidden_layers 3)"},
      {"NaN", edited([nan](StTensors& t) { find_tensor(t, "layers.2.projection").values[17] = nan; }),
       "tensor 'layers.2.projection' (layer 2): element 17 is NaN; expected finite values"},
      {"I32 dtype", edited([](StTensors& t) { find_tensor(t, "layers.0.projection").dtype = "I32"; }),
       "tensor 'layers.0.projection' (layer 0): dtype I32; expected F32, F16 or BF16"},
      {"missing type", [] { return st_image({}, lsh_tensors(shape(), 16)); },
       "__metadata__ key 'type': missing; expected \"lsh\""},
      {"wrong type", [] { return st_image({{"type", "hashattention"}}, lsh_tensors(shape(), 16)); },
       "__metadata__ key 'type': expected \"lsh\", got 'hashattention'"},
      {"huge declared sizes",
       [] {
         return raw_image(R"({"__metadata__":{"type":"lsh"},"layers.0.projection":)"
                          R"({"dtype":"F32","shape":[9,1000000000000],"data_offsets":[0,36000000000000]}})",
                          16);
       },
       "'layers.0.projection'", false},
  };
  expect_each_rejected(cases, [](const std::string& doc) { return parse_lsh_adapter(doc, shape()); });
}

}  // namespace
}  // namespace hotswap
