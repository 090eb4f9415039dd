// hashattention and lsh adapters through the registry (issue 13): registered, listed with
// their type and description, persisted and reloaded after a restart, evicted and reloaded
// like the others; every bad document is an InvalidArgument that changes nothing stored.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>

#include "../adapters/hash_lsh_docs.h"
#include "adapters/adapter_registry.h"
#include "adapters/hashattention_adapter.h"
#include "adapters/lsh_adapter.h"
#include "adapters/sha256.h"
#include "test_adapters.h"

namespace hotswap {
namespace {

using testing::directory_contents;
using testing::find_tensor;
using testing::hash_metadata;
using testing::hash_tensors;
using testing::st_image;
using testing::StTensors;
using testing::TempDir;
using testing::test_shape;
using ::testing::HasSubstr;

constexpr int64_t kLargeBudget = 1 << 30;

// test_shape(): L=4, H=8, d=16. query MLP 16 -> 32 -> 16, key MLP 16 -> 16.
std::string hash_doc(int seed) { return testing::hash_doc(test_shape(), seed); }
std::string lsh_doc(int seed) { return testing::lsh_doc(test_shape(), 64, seed); }

std::vector<std::tuple<std::string, std::string, std::string>> listing(const AdapterRegistry& r) {
  std::vector<std::tuple<std::string, std::string, std::string>> out;
  for (const AdapterInfo& i : r.list()) out.emplace_back(i.name, i.type, i.sha256);
  return out;
}

TEST(HashLshAdapters, RegisterListPersistAndReloadAfterRestart) {
  TempDir dir;
  const std::string hat = hash_doc(1), lsh = lsh_doc(2);
  std::vector<std::tuple<std::string, std::string, std::string>> before;
  {
    AdapterRegistry r(test_shape(), "", dir.path(), kLargeBudget);
    Result<AdapterPutResult> a = r.put("hat", hat, AdapterEncoding::kSafetensors);
    ASSERT_TRUE(a.is_ok()) << a.status().message();
    EXPECT_EQ(a->info.type, "hashattention");
    EXPECT_EQ(a->info.layers, 4);
    EXPECT_EQ(a->info.sha256, sha256_hex(hat));
    EXPECT_EQ(a->info.description,
              "hashattention adapter 'hat': 4 layers, 8 heads, 16 bits, query MLP 16->32->16, key MLP 16->16, "
              "activation silu");
    EXPECT_EQ(a->info.parameters_json,
              R"({"layers":4,"heads":8,"bits":16,"activation":"silu","query_widths":[16,32,16],"key_widths":[16,16]})");
    Result<AdapterPutResult> b = r.put("proj", lsh, AdapterEncoding::kSafetensors);
    ASSERT_TRUE(b.is_ok()) << b.status().message();
    EXPECT_EQ(b->info.type, "lsh");
    EXPECT_EQ(b->info.description, "lsh adapter 'proj': 4 layers, projection [17, 64] per layer (lsh_l * lsh_k = 64)");
    EXPECT_EQ(testing::read_file(dir.file("hat.safetensors")), hat);
    EXPECT_EQ(testing::read_file(dir.file("proj.safetensors")), lsh);
    before = listing(r);
  }
  // Restart with room for one resident adapter: pinning the other reloads it from its file.
  AdapterRegistry r(test_shape(), "", dir.path(), 1);
  EXPECT_EQ(r.load_directory(), 2);
  EXPECT_EQ(listing(r), before);
  {
    Result<std::shared_ptr<const Adapter>> h = r.pin("hat");
    ASSERT_TRUE(h.is_ok()) << h.status().message();
    ASSERT_TRUE(h.value()->hashattention());
    EXPECT_EQ(h.value()->type(), AdapterType::kHashAttention);
    StTensors expected = hash_tensors(test_shape(), {16, 32, 16}, {16, 16}, 1);
    EXPECT_EQ(h.value()->hashattention()->layers[2].query[1].weight,
              find_tensor(expected, "layers.2.query.1.weight").values);
  }  // unpinned: evictable
  Result<std::shared_ptr<const Adapter>> p = r.pin("proj");
  ASSERT_TRUE(p.is_ok()) << p.status().message();
  ASSERT_TRUE(p.value()->lsh());
  EXPECT_EQ(p.value()->lsh()->columns, 64);
  EXPECT_EQ(p.value()->lsh()->projection[3], testing::lsh_tensors(test_shape(), 64, 2)[3].second.values);
  EXPECT_FALSE(r.get("hat")->resident) << "evicted for the lsh adapter (budget of one byte)";
  EXPECT_TRUE(r.get("proj")->resident);
  EXPECT_GE(r.stats().evictions_total, 1);
  // Evicted, then pinned again: reloaded from its file, same version.
  Result<std::shared_ptr<const Adapter>> again = r.pin("hat");
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(again.value()->sha256(), sha256_hex(hat));
}

TEST(HashLshAdapters, ResidentBytesCountTheParameters) {
  auto h = parse_adapter_document(hash_doc(1), AdapterEncoding::kSafetensors, test_shape(), "h");
  auto l = parse_adapter_document(lsh_doc(1), AdapterEncoding::kSafetensors, test_shape(), "l");
  ASSERT_TRUE(h.is_ok() && l.is_ok());
  EXPECT_GE(adapter_resident_bytes(*h.value()), h.value()->hashattention()->num_parameters() * sizeof(float));
  EXPECT_GE(adapter_resident_bytes(*l.value()), 4u * 17 * 64 * sizeof(float));
}

TEST(HashLshAdapters, JsonOrUnknownTypesAreRefusedWithTheirOwnMessage) {
  const ModelShape shape = test_shape();
  auto r = parse_adapter_document(R"({"adapter_type": "hashattention"})", AdapterEncoding::kJson, shape, "x");
  EXPECT_THAT(r.status().message(), HasSubstr("'hashattention' adapters are safetensors files"));
  r = parse_adapter_document(st_image({{"type", "lora"}}, {}), AdapterEncoding::kSafetensors, shape, "x");
  EXPECT_EQ(r.status().message(),
            "__metadata__ key 'type': unknown adapter type 'lora'; expected 'hashattention' or 'lsh' (an nsa adapter "
            "has its configuration under __metadata__ key 'adapter_config' instead)");
  // An nsa adapter with an unrelated "type" in its metadata is still an nsa adapter.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = {{"type", "whatever"}, {"adapter_config", testing::nsa_config().dump()}};
  std::string data;
  for (const auto& [name, t] : testing::nsa_tensors(1)) {
    const size_t begin = data.size();
    data.append(reinterpret_cast<const char*>(t.data.data()), t.data.size() * sizeof(float));
    header[name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
  }
  r = parse_adapter_document(testing::safetensors_image(header.dump(), data), AdapterEncoding::kSafetensors, shape, "x");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r.value()->type(), AdapterType::kNsa);
}

std::string hash_edited(const std::function<void(StTensors&)>& edit, const std::string& activation = "silu") {
  StTensors t = hash_tensors(test_shape(), {16, 32, 16}, {16, 16}, 9);
  edit(t);
  return st_image(hash_metadata(activation), t);
}
std::string lsh_edited(const std::function<void(StTensors&)>& edit) {
  StTensors t = testing::lsh_tensors(test_shape(), 64, 9);
  edit(t);
  return st_image({{"type", "lsh"}}, t);
}

TEST(HashLshAdapters, BadDocumentsAreInvalidArgumentAndChangeNothingStored) {
  TempDir dir;
  AdapterRegistry r(test_shape(), "", dir.path(), kLargeBudget);
  ASSERT_TRUE(r.put("keep", hash_doc(1), AdapterEncoding::kSafetensors).is_ok());
  ASSERT_TRUE(r.put("keep-lsh", lsh_doc(1), AdapterEncoding::kSafetensors).is_ok());
  ASSERT_TRUE(r.put("keep-mixed", testing::mixed_doc(1), AdapterEncoding::kJson).is_ok());
  const auto files = directory_contents(dir.path());
  const auto before = listing(r);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  using T = StTensors;
  const std::vector<std::pair<std::string, std::string>> bad = {  // (document, a part of its message)
      {hash_edited([](T& t) { std::erase_if(t, [](const auto& p) { return p.first.starts_with("layers.3."); }); }),
       "layer 3: no query MLP"},
      {hash_edited([](T& t) { t.emplace_back("layers.4.key.0.weight", testing::seeded({8, 16, 16}, 1)); }),
       "(layer 4): layer out of range"},
      {hash_edited([](T& t) { find_tensor(t, "layers.0.query.0.weight") = testing::seeded({2, 16, 32}, 1); }),
       "dimension 0 = num_attention_heads 8"},
      {st_image(hash_metadata(), hash_tensors(test_shape(), {24, 16}, {16, 16})), "= head_dim 16), got [8, 24, 16]"},
      {hash_edited([](T& t) { find_tensor(t, "layers.1.query.1.weight") = testing::seeded({8, 16, 16}, 1); }),
       "(d_in = d_out 32 of 'layers.1.query.0.weight'), got [8, 16, 16]"},
      {hash_edited([](T& t) { find_tensor(t, "layers.2.key.0.bias") = testing::seeded({8, 15}, 1); }),
       "tensor 'layers.2.key.0.bias' (layer 2): expected shape [8, 16]"},
      {st_image(hash_metadata(), hash_tensors(test_shape(), {16, 128}, {16, 128})), "signature bits; expected 1..64, got 128"},
      {st_image(hash_metadata(), hash_tensors(test_shape(), {16, 32}, {16, 16})), "signature bits (the last d_out) 16 differ from 32"},
      {hash_edited([nan](T& t) { find_tensor(t, "layers.3.key.0.weight").values[2] = nan; }), "element 2 is NaN"},
      {hash_edited([](T& t) { find_tensor(t, "layers.0.key.0.weight").dtype = "I32"; }), "dtype I32"},
      {hash_edited([](T& t) { t.emplace_back("extra", testing::seeded({1}, 1)); }), "tensor 'extra': not a tensor"},
      {hash_edited([](T&) {}, "softmax"), "__metadata__ key 'activation'"},
      {st_image({{"type", "hashattention"}}, hash_tensors(test_shape(), {16, 16}, {16, 16})), "'activation': missing"},
      {testing::safetensors_image(
           R"({"__metadata__":{"type":"hashattention","activation":"relu"},"layers.0.query.0.weight":{"dtype":"F32","shape":[100000000,100000000,16],"data_offsets":[0,640000000000000000]}})",
           std::string(64, '\0')),
       "outside the data region of 64 bytes"},
      {lsh_edited([](T& t) { find_tensor(t, "layers.0.projection") = testing::seeded({16, 64}, 1); }),
       "expected shape [17, C]"},
      {lsh_edited([](T& t) { find_tensor(t, "layers.3.projection") = testing::seeded({17, 32}, 1); }),
       "the same lsh_l * lsh_k columns as 'layers.0.projection'"},
      {lsh_edited([](T& t) { testing::erase_tensor(t, "layers.2.projection"); }), "tensor 'layers.2.projection' (layer 2): missing"},
      {lsh_edited([nan](T& t) { find_tensor(t, "layers.1.projection").values[0] = nan; }), "element 0 is NaN"},
  };
  ASSERT_GE(bad.size(), 15u);
  for (const std::string name : {"keep", "keep-lsh", "keep-mixed", "new-name"}) {
    for (const auto& [doc, message] : bad) {
      SCOPED_TRACE(name + ": " + message);
      Result<AdapterPutResult> put = r.put(name, doc, AdapterEncoding::kSafetensors);
      ASSERT_FALSE(put.is_ok());
      EXPECT_EQ(put.status().code(), StatusCode::kInvalidArgument);
      EXPECT_THAT(put.status().message(), HasSubstr(message));
    }
  }
  EXPECT_EQ(directory_contents(dir.path()), files);
  EXPECT_EQ(listing(r), before);
  EXPECT_EQ(r.pin("keep").value()->sha256(), sha256_hex(hash_doc(1)));
  EXPECT_EQ(r.pin("keep-lsh").value()->sha256(), sha256_hex(lsh_doc(1)));
}

}  // namespace
}  // namespace hotswap
