#include "adapters/adapter_registry.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <random>
#include <set>
#include <thread>

#include "adapters/nsa_adapter.h"
#include "adapters/sha256.h"
#include "test_adapters.h"

namespace hotswap {
namespace {

using testing::directory_contents;
using testing::mixed_doc;
using testing::read_file;
using testing::TempDir;
using testing::temp_files_in;
using testing::test_shape;
using testing::write_file;

constexpr int64_t kLargeBudget = 1 << 30;

std::vector<std::string> names_of(const std::vector<AdapterInfo>& infos) {
  std::vector<std::string> out;
  for (const AdapterInfo& i : infos) out.push_back(i.name);
  return out;
}

// (name, sha256, created) of every adapter: what must survive a restart.
std::vector<std::tuple<std::string, std::string, int64_t>> identity(const std::vector<AdapterInfo>& infos) {
  std::vector<std::tuple<std::string, std::string, int64_t>> out;
  for (const AdapterInfo& i : infos) out.emplace_back(i.name, i.sha256, i.created);
  return out;
}

// prefix + i. (Appending, not "literal" + std::to_string(i): GCC 12 reports a false
// -Wrestrict for the latter.)
std::string numbered(const char* prefix, size_t i) {
  std::string name = prefix;
  name += std::to_string(i);
  return name;
}

std::shared_ptr<const Adapter> pin_ok(AdapterRegistry& r, const std::string& name) {
  Result<std::shared_ptr<const Adapter>> p = r.pin(name);
  EXPECT_TRUE(p.is_ok()) << name << ": " << p.status().message();
  return p.is_ok() ? p.value() : nullptr;
}

TEST(AdapterRegistry, PutGetListRemove) {
  TempDir dir;
  AdapterRegistry r(test_shape(), "", dir.path(), kLargeBudget);
  const std::string doc = mixed_doc(1);

  Result<AdapterPutResult> put = r.put("beta", doc, AdapterEncoding::kJson);
  ASSERT_TRUE(put.is_ok()) << put.status().message();
  EXPECT_TRUE(put->created);
  EXPECT_EQ(put->info.name, "beta");
  EXPECT_EQ(put->info.type, "mixed");
  EXPECT_EQ(put->info.layers, 4);
  EXPECT_EQ(put->info.bytes, static_cast<int64_t>(doc.size()));
  EXPECT_EQ(put->info.sha256, sha256_hex(doc));
  EXPECT_TRUE(put->info.resident);
  EXPECT_NE(put->info.parameters_json.find("\"recent_window_size\""), std::string::npos);
  EXPECT_NE(put->info.description.find("'beta'"), std::string::npos);
  EXPECT_GT(put->info.created, 1'600'000'000);
  EXPECT_EQ(read_file(dir.file("beta.json")), doc);

  ASSERT_TRUE(r.put("alpha", mixed_doc(2), AdapterEncoding::kJson).is_ok());
  ASSERT_TRUE(r.put("Gamma-2.x_y", mixed_doc(3), AdapterEncoding::kJson).is_ok());
  EXPECT_EQ(names_of(r.list()), (std::vector<std::string>{"Gamma-2.x_y", "alpha", "beta"}));

  Result<AdapterInfo> got = r.get("beta");
  ASSERT_TRUE(got.is_ok());
  EXPECT_EQ(got->sha256, sha256_hex(doc));

  // Replacing: 200-style result, new digest, file replaced.
  const std::string doc2 = mixed_doc(4);
  Result<AdapterPutResult> replaced = r.put("beta", doc2, AdapterEncoding::kJson);
  ASSERT_TRUE(replaced.is_ok());
  EXPECT_FALSE(replaced->created);
  EXPECT_EQ(replaced->info.sha256, sha256_hex(doc2));
  EXPECT_EQ(r.get("beta")->sha256, sha256_hex(doc2));
  EXPECT_EQ(read_file(dir.file("beta.json")), doc2);

  ASSERT_TRUE(r.remove("beta").is_ok());
  EXPECT_EQ(r.get("beta").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.get("beta").status().message(), "adapter 'beta' is not registered");
  EXPECT_EQ(r.pin("beta").status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(dir.file("beta.json")));
  const Status again = r.remove("beta");
  EXPECT_EQ(again.code(), StatusCode::kNotFound);
  EXPECT_NE(again.message().find("'beta'"), std::string::npos);

  const AdapterStats stats = r.stats();
  EXPECT_EQ(stats.registered, 2);
  EXPECT_EQ(stats.resident, 2);
  EXPECT_EQ(stats.loads_total, 4);
  EXPECT_GT(stats.last_upload_ms, 0.0);
  EXPECT_TRUE(temp_files_in(dir.path()).empty());
}

TEST(AdapterRegistry, ReplacingAndDeletingKeepPinnedVersionsAliveAndUnchanged) {
  TempDir dir;
  AdapterRegistry r(test_shape(), "", dir.path(), kLargeBudget);
  ASSERT_TRUE(r.put("a", mixed_doc(1), AdapterEncoding::kJson).is_ok());
  std::shared_ptr<const Adapter> v1 = pin_ok(r, "a");
  ASSERT_TRUE(v1);
  const std::vector<float> v1_gates = v1->mixed()->gates;
  const std::string v1_sha = v1->sha256();

  ASSERT_TRUE(r.put("a", mixed_doc(2), AdapterEncoding::kJson).is_ok());
  std::shared_ptr<const Adapter> v2 = pin_ok(r, "a");
  ASSERT_TRUE(v2);
  EXPECT_NE(v2.get(), v1.get());
  EXPECT_EQ(v2->sha256(), sha256_hex(mixed_doc(2)));
  EXPECT_NE(v2->mixed()->gates, v1_gates);
  // The request that pinned v1 still sees exactly v1.
  EXPECT_EQ(v1->sha256(), v1_sha);
  EXPECT_EQ(v1->mixed()->gates, v1_gates);
  EXPECT_EQ(v1->name(), "a");

  ASSERT_TRUE(r.remove("a").is_ok());
  EXPECT_EQ(v2->sha256(), sha256_hex(mixed_doc(2)));
  EXPECT_EQ(v1->mixed()->gates, v1_gates);
  EXPECT_EQ(r.pin("a").status().code(), StatusCode::kNotFound);
}

TEST(AdapterRegistry, WithoutDirectoryNothingIsWrittenOrEvicted) {
  AdapterRegistry r(test_shape(), "", "", /*resident_budget_bytes=*/1);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(r.put(numbered("m", i), mixed_doc(i), AdapterEncoding::kJson).is_ok());
  EXPECT_EQ(r.load_directory(), 0);
  const AdapterStats stats = r.stats();
  EXPECT_EQ(stats.registered, 5);
  EXPECT_EQ(stats.resident, 5);
  EXPECT_EQ(stats.evictions_total, 0);
  for (const AdapterInfo& info : r.list()) EXPECT_TRUE(info.resident) << info.name;
}

TEST(AdapterRegistry, RestartListsTheSameAdaptersWithTheSameDigests) {
  TempDir dir;
  std::vector<AdapterInfo> before;
  {
    AdapterRegistry r(test_shape(), "", dir.path(), kLargeBudget);
    for (int i = 0; i < 6; ++i) ASSERT_TRUE(r.put(numbered("ad", i), mixed_doc(i), AdapterEncoding::kJson).is_ok());
    ASSERT_TRUE(r.put("ad3", mixed_doc(30), AdapterEncoding::kJson).is_ok());  // replaced once
    ASSERT_TRUE(r.remove("ad5").is_ok());
    before = r.list();
  }
  AdapterRegistry restarted(test_shape(), "", dir.path(), kLargeBudget);
  EXPECT_EQ(restarted.load_directory(), 5);
  const std::vector<AdapterInfo> after = restarted.list();
  EXPECT_EQ(identity(after), identity(before));
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].bytes, before[i].bytes);
    EXPECT_EQ(after[i].parameters_json, before[i].parameters_json);
  }
  EXPECT_EQ(restarted.stats().loads_total, 5);
  std::shared_ptr<const Adapter> ad3 = pin_ok(restarted, "ad3");
  ASSERT_TRUE(ad3);
  EXPECT_EQ(ad3->sha256(), sha256_hex(mixed_doc(30)));
}

TEST(AdapterRegistry, StartupSkipsCorruptForeignAndStrayFilesAndRemovesTempFiles) {
  TempDir dir;
  {
    AdapterRegistry r(test_shape(), "", dir.path(), kLargeBudget);
    ASSERT_TRUE(r.put("good1", mixed_doc(1), AdapterEncoding::kJson).is_ok());
    ASSERT_TRUE(r.put("good2", mixed_doc(2), AdapterEncoding::kJson).is_ok());
  }
  const std::string full = mixed_doc(3);
  write_file(dir.file("torn.json"), full.substr(0, full.size() / 2));               // half-written
  write_file(dir.file("garbage.json"), std::string("\x00\x01\xff\xfe junk", 10));   // not JSON
  write_file(dir.file("foreign.json"), mixed_doc(4, /*num_layers=*/12));             // another base model
  write_file(dir.file("wronghead.json"), mixed_doc(5, 4, /*gates_per_layer=*/3));    // wrong head count
  write_file(dir.file("badst.safetensors"), "not a safetensors file at all");        // bad header
  write_file(dir.file("notes.txt"), "operator notes");                               // not an adapter
  write_file(dir.file("-bad.json"), mixed_doc(6));                                   // not an adapter name
  // Killed uploads: temporary files whose writer (a process of this host) no longer exists.
  const std::string dead = testing::dead_process_owner();
  write_file(dir.file(".good1." + dead + "-0123456789abcdef.tmp"), full.substr(0, 10));  // killed upload
  write_file(dir.file(".newone." + dead + "-fedcba9876543210.tmp"), full);              // killed before rename
  std::filesystem::create_directory(dir.file("subdir.json"));

  AdapterRegistry r(test_shape(), "", dir.path(), kLargeBudget);
  EXPECT_EQ(r.load_directory(), 2);
  EXPECT_EQ(names_of(r.list()), (std::vector<std::string>{"good1", "good2"}));
  EXPECT_EQ(r.get("good1")->sha256, sha256_hex(mixed_doc(1)));
  EXPECT_TRUE(temp_files_in(dir.path()).empty());
  // Skipped files are reported, not deleted: an operator may want to look at them.
  EXPECT_TRUE(std::filesystem::exists(dir.file("torn.json")));
  EXPECT_TRUE(std::filesystem::exists(dir.file("notes.txt")));
  // A valid upload under the torn file's name replaces it.
  ASSERT_TRUE(r.put("torn", full, AdapterEncoding::kJson).is_ok());
  EXPECT_EQ(read_file(dir.file("torn.json")), full);
}

TEST(AdapterRegistry, EvictsLeastRecentlyUsedAndReloadsTransparently) {
  TempDir dir;
  Result<std::shared_ptr<const Adapter>> sample =
      parse_adapter_document(mixed_doc(0), AdapterEncoding::kJson, test_shape(), "x");
  ASSERT_TRUE(sample.is_ok());
  const int64_t one = static_cast<int64_t>(adapter_resident_bytes(*sample.value()));
  AdapterRegistry r(test_shape(), "", dir.path(), /*resident_budget_bytes=*/2 * one + one / 2);

  ASSERT_TRUE(r.put("a", mixed_doc(1), AdapterEncoding::kJson).is_ok());
  ASSERT_TRUE(r.put("b", mixed_doc(2), AdapterEncoding::kJson).is_ok());
  ASSERT_TRUE(r.put("c", mixed_doc(3), AdapterEncoding::kJson).is_ok());
  AdapterStats s = r.stats();
  EXPECT_EQ(s.registered, 3);
  EXPECT_EQ(s.resident, 2);
  EXPECT_EQ(s.resident_bytes, 2 * one);
  EXPECT_EQ(s.evictions_total, 1);
  EXPECT_FALSE(r.get("a")->resident);
  EXPECT_TRUE(r.get("b")->resident);

  // Reload on pin: same version, same gates; "b" is now least recently used.
  std::shared_ptr<const Adapter> a = pin_ok(r, "a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->sha256(), sha256_hex(mixed_doc(1)));
  std::shared_ptr<const Adapter> reference =
      parse_adapter_document(mixed_doc(1), AdapterEncoding::kJson, test_shape(), "a").value();
  EXPECT_EQ(a->mixed()->gates, reference->mixed()->gates);
  s = r.stats();
  EXPECT_EQ(s.loads_total, 4);
  EXPECT_EQ(s.evictions_total, 2);
  EXPECT_TRUE(r.get("a")->resident);
  EXPECT_FALSE(r.get("b")->resident);
  EXPECT_TRUE(r.get("c")->resident);

  // A pinned adapter is not evicted even when least recently used: "a" is held by `a`.
  ASSERT_TRUE(pin_ok(r, "c"));  // order: c, a, b (evicted)
  ASSERT_TRUE(pin_ok(r, "b"));  // reload; order: b, c, a -> "a" is LRU but pinned, "c" goes
  EXPECT_TRUE(r.get("a")->resident);
  EXPECT_TRUE(r.get("b")->resident);
  EXPECT_FALSE(r.get("c")->resident);
  EXPECT_EQ(a->mixed()->gates, reference->mixed()->gates);  // the pinned copy is unaffected
  a.reset();
  ASSERT_TRUE(pin_ok(r, "c"));  // order: c, b, a -> now "a" can go
  EXPECT_FALSE(r.get("a")->resident);
  EXPECT_EQ(r.stats().evictions_total, 4);
  EXPECT_EQ(r.list().size(), 3u);
}

// The adapter directory may be shared with other replicas (issue 15): an evicted adapter whose
// file another process replaced reloads as the new version (new requests get it; a request
// that pinned the old one keeps it), and one whose file was deleted is gone (404).
TEST(AdapterRegistry, ReloadTakesWhatTheFileHoldsNowOrForgetsADeletedAdapter) {
  TempDir dir;
  Result<std::shared_ptr<const Adapter>> sample =
      parse_adapter_document(mixed_doc(0), AdapterEncoding::kJson, test_shape(), "x");
  const int64_t one = static_cast<int64_t>(adapter_resident_bytes(*sample.value()));
  AdapterRegistry r(test_shape(), "", dir.path(), one);
  ASSERT_TRUE(r.put("a", mixed_doc(1), AdapterEncoding::kJson).is_ok());
  ASSERT_TRUE(r.put("b", mixed_doc(2), AdapterEncoding::kJson).is_ok());
  ASSERT_FALSE(r.get("a")->resident);

  write_file(dir.file("a.json"), mixed_doc(9));  // valid, another version (written in place)
  Result<std::shared_ptr<const Adapter>> changed = r.pin("a");
  ASSERT_TRUE(changed.is_ok()) << changed.status().message();
  EXPECT_EQ((*changed)->sha256(), sha256_hex(mixed_doc(9)));
  EXPECT_EQ(r.get("a")->sha256, sha256_hex(mixed_doc(9)));
  changed = Status::not_found("released");  // the request that pinned it has finished
  ASSERT_TRUE(pin_ok(r, "b"));               // evicts "a"
  ASSERT_FALSE(r.get("a")->resident);

  std::filesystem::remove(dir.file("a.json"));
  Result<std::shared_ptr<const Adapter>> gone = r.pin("a");
  EXPECT_EQ(gone.status().code(), StatusCode::kNotFound);
  EXPECT_NE(gone.status().message().find("deleted"), std::string::npos) << gone.status().message();
  EXPECT_EQ(r.get("a").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.list().size(), 1u);

  // A new upload brings it back.
  ASSERT_TRUE(r.put("a", mixed_doc(1), AdapterEncoding::kJson).is_ok());
  EXPECT_TRUE(r.pin("a").is_ok());
}

TEST(AdapterRegistry, TypeComesFromTopLevelAdapterTypeOnly) {
  const ModelShape shape = test_shape();
  // adapter_type after the dictionary is still found.
  nlohmann::ordered_json doc = nlohmann::ordered_json::parse(mixed_doc(1));
  doc.erase("adapter_type");
  doc["adapter_type"] = "lora";
  Result<std::shared_ptr<const Adapter>> r = parse_adapter_document(doc.dump(), AdapterEncoding::kJson, shape, "x");
  EXPECT_EQ(r.status().message(),
            "key 'adapter_type': unknown adapter type 'lora'; expected 'mixed' or 'nsa' (JSON documents; "
            "'hashattention' and 'lsh' adapters are safetensors files with __metadata__ \"type\")");

  // A nested "adapter_type" is not the document's type; absent means mixed.
  doc.erase("adapter_type");
  doc["extra"] = {{"adapter_type", "lora"}};
  r = parse_adapter_document(doc.dump(), AdapterEncoding::kJson, shape, "x");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r.value()->type(), AdapterType::kMixed);

  doc["adapter_type"] = 3;
  r = parse_adapter_document(doc.dump(), AdapterEncoding::kJson, shape, "x");
  EXPECT_EQ(r.status().message(), "key 'adapter_type': expected the string 'mixed' or 'nsa', got number 3");
}

TEST(AdapterRegistry, NsaAdaptersInBothEncodingsRegisterPersistAndReload) {
  TempDir dir;
  const std::string json = testing::nsa_json_doc(1);
  const std::string st = testing::nsa_safetensors_doc(2);
  std::vector<AdapterInfo> before;
  {
    AdapterRegistry r(test_shape(), "", dir.path(), kLargeBudget);
    Result<AdapterPutResult> a = r.put("nsa-json", json, AdapterEncoding::kJson);
    ASSERT_TRUE(a.is_ok()) << a.status().message();
    EXPECT_EQ(a->info.type, "nsa");
    EXPECT_EQ(a->info.layers, 4);
    EXPECT_EQ(a->info.sha256, sha256_hex(json));
    EXPECT_NE(a->info.parameters_json.find("\"compress_block_size\":4"), std::string::npos) << a->info.parameters_json;
    EXPECT_NE(a->info.description.find("'nsa-json'"), std::string::npos) << a->info.description;
    Result<AdapterPutResult> b = r.put("nsa-st", st, AdapterEncoding::kSafetensors);
    ASSERT_TRUE(b.is_ok()) << b.status().message();
    EXPECT_EQ(b->info.sha256, sha256_hex(st));
    EXPECT_EQ(testing::read_file(dir.file("nsa-st.safetensors")), st);

    std::shared_ptr<const Adapter> pinned = pin_ok(r, "nsa-st");
    ASSERT_TRUE(pinned && pinned->nsa());
    EXPECT_EQ(pinned->type(), AdapterType::kNsa);
    EXPECT_EQ(pinned->nsa()->layers.size(), 4u);
    EXPECT_EQ(pinned->nsa()->layers[1].gate_b, testing::nsa_tensors(2)["model.layers.1.self_attn.nsa.strategy_combiner.0.bias"].data);

    // Same name, other encoding: the old file goes.
    ASSERT_TRUE(r.put("nsa-st2", st, AdapterEncoding::kSafetensors).is_ok());
    ASSERT_TRUE(r.put("nsa-st2", json, AdapterEncoding::kJson).is_ok());
    EXPECT_FALSE(std::filesystem::exists(dir.file("nsa-st2.safetensors")));
    EXPECT_EQ(testing::read_file(dir.file("nsa-st2.json")), json);
    before = r.list();
  }
  // Restart with room for one resident adapter: the others reload from their files.
  AdapterRegistry r(test_shape(), "", dir.path(), 1);
  EXPECT_EQ(r.load_directory(), 3);
  EXPECT_EQ(identity(r.list()), identity(before));
  for (const AdapterInfo& info : before) {
    std::shared_ptr<const Adapter> a = pin_ok(r, info.name);
    ASSERT_TRUE(a && a->nsa()) << info.name;
    EXPECT_EQ(a->sha256(), info.sha256);
  }
  EXPECT_GE(r.stats().evictions_total, 2);
  EXPECT_EQ(r.stats().resident, 1);
}

// Every bad upload gets its specific error and changes nothing stored: not the files, not
// the registered versions.
TEST(AdapterRegistry, BadAdaptersAreRejectedWithSpecificMessagesAndChangeNothing) {
  using nlohmann::ordered_json;
  auto edit = [](const std::function<void(ordered_json&)>& f) {
    ordered_json doc = ordered_json::parse(testing::mixed_doc(7));
    f(doc);
    return doc.dump();
  };
  auto gates = [](ordered_json& doc, int layer) -> ordered_json& {
    return doc["adapter_weight_dict"]["model.layers." + std::to_string(layer) + ".self_attn.adapter.weight"];
  };
  const std::string nan_doc = [&] {
    std::string s = testing::mixed_doc(7);
    const std::string key = "\"model.layers.2.self_attn.adapter.weight\":[";
    const size_t at = s.find(key) + key.size();
    return s.substr(0, at) + "NaN" + s.substr(s.find(',', at));
  }();
  const std::string pos_emb = "model.layers.0.self_attn.nsa.k_compress.pos_emb";
  const std::string nsa_missing_tensor = [] {
    ordered_json doc = ordered_json::parse(testing::nsa_json_doc(1));
    doc["adapter_weight_dict"].erase("model.layers.3.self_attn.nsa.compress_mem_kv");
    return doc.dump();
  }();
  const std::string nsa_bad_shape = [] {
    ordered_json doc = ordered_json::parse(testing::nsa_json_doc(1));
    ordered_json& t = doc["adapter_weight_dict"]["model.layers.1.self_attn.nsa.k_compress.pos_emb"];
    t["shape"] = {2, 4, 15};
    ordered_json data = ordered_json::array();
    for (size_t i = 0; i < 2 * 4 * 15; ++i) data.push_back(t["data"][i]);
    t["data"] = data;
    return doc.dump();
  }();

  struct Case {
    const char* what;
    std::string name;
    std::string body;
    AdapterEncoding encoding;
    StatusCode code;
    std::vector<std::string> message_has;
  };
  const std::vector<Case> cases = {
      {"missing layer", "keep",
       edit([&](ordered_json& d) { d["adapter_weight_dict"].erase("model.layers.3.self_attn.adapter.weight"); }),
       AdapterEncoding::kJson, StatusCode::kInvalidArgument,
       {"'model.layers.3.self_attn.adapter.weight' (layer 3): missing", "0..3", "got 3 layers"}},
      {"layer beyond the model", "keep",
       edit([&](ordered_json& d) { d["adapter_weight_dict"]["model.layers.4.self_attn.adapter.weight"] = {1, 1}; }),
       AdapterEncoding::kJson, StatusCode::kInvalidArgument,
       {"(layer 4): layer out of range", "num_hidden_layers 4", "got 4"}},
      {"wrong head count", "keep", edit([&](ordered_json& d) { gates(d, 1) = {0.5, 0.5, 0.5}; }), AdapterEncoding::kJson,
       StatusCode::kInvalidArgument,
       {"(layer 1)", "2 (num_key_value_heads) or 8 (num_attention_heads)", "got a list of 3"}},
      // JSON has no NaN, but Python's json.dump writes the bare literal.
      {"NaN gate literal", "keep", nan_doc, AdapterEncoding::kJson, StatusCode::kInvalidArgument,
       {"'model.layers.2.self_attn.adapter.weight' (layer 2)", "element 0", "finite", "got NaN"}},
      {"NaN in an nsa tensor", "keep",
       testing::nsa_safetensors_doc(1, "model.layers.2.self_attn.nsa.strategy_combiner.0.weight"),
       AdapterEncoding::kSafetensors, StatusCode::kInvalidArgument,
       {"model.layers.2.self_attn.nsa.strategy_combiner.0.weight", "layer 2"}},
      {"gate above 1", "keep", edit([&](ordered_json& d) { gates(d, 0)[1] = 1.5; }), AdapterEncoding::kJson,
       StatusCode::kInvalidArgument, {"(layer 0)", "element 1", "[0, 1]", "1.5"}},
      {"negative gate", "keep", edit([&](ordered_json& d) { gates(d, 3)[0] = -0.25; }), AdapterEncoding::kJson,
       StatusCode::kInvalidArgument, {"(layer 3)", "element 0", "-0.25"}},
      {"gate is a string", "keep", edit([&](ordered_json& d) { gates(d, 2)[1] = "0.5"; }), AdapterEncoding::kJson,
       StatusCode::kInvalidArgument, {"(layer 2)", "element 1", "string"}},
      {"unknown adapter_type", "keep", edit([](ordered_json& d) { d["adapter_type"] = "lora"; }), AdapterEncoding::kJson,
       StatusCode::kInvalidArgument, {"key 'adapter_type'", "unknown adapter type 'lora'", "'mixed' or 'nsa'"}},
      {"negative window", "keep", edit([](ordered_json& d) { d["sink_window_size"] = -1; }), AdapterEncoding::kJson,
       StatusCode::kInvalidArgument, {"key 'sink_window_size'", "got -1"}},
      {"not JSON", "keep", "{\"adapter_type\": \"mixed\", \"adapter_weight_dict\": {", AdapterEncoding::kJson,
       StatusCode::kInvalidArgument, {"not valid JSON"}},
      {"JSON array", "keep", "[1, 2, 3]", AdapterEncoding::kJson, StatusCode::kInvalidArgument,
       {"must be a JSON object", "array"}},
      {"nsa JSON without tensors", "keep", R"({"adapter_type": "nsa", "adapter_weight_dict": {}})",
       AdapterEncoding::kJson, StatusCode::kInvalidArgument, {"layer 0"}},
      {"nsa missing one tensor", "keep", nsa_missing_tensor, AdapterEncoding::kJson, StatusCode::kInvalidArgument,
       {"model.layers.3.self_attn.nsa.compress_mem_kv", "layer 3"}},
      {"nsa wrong tensor shape", "keep", nsa_bad_shape, AdapterEncoding::kJson, StatusCode::kInvalidArgument,
       {"model.layers.1.self_attn.nsa.k_compress.pos_emb", "layer 1", "[2, 4, 16]", "[2, 4, 15]"}},
      {"bad safetensors header", "keep", testing::safetensors_image("{\"a\": [1, 2", std::string(16, '\0')),
       AdapterEncoding::kSafetensors, StatusCode::kInvalidArgument, {"safetensors header is not a JSON object"}},
      {"huge declared header size", "keep", std::string("\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10),
       AdapterEncoding::kSafetensors, StatusCode::kInvalidArgument,
       {"header length 9223372036854775807 exceeds the file size 10"}},
      {"huge declared tensor size", "keep",
       testing::safetensors_image(R"({")" + pos_emb +
                                      R"(":{"dtype":"F32","shape":[1000000,1000000,1000],"data_offsets":[0,4000000000000000000]}})",
                                  std::string(64, '\0')),
       AdapterEncoding::kSafetensors, StatusCode::kInvalidArgument,
       {"'model.layers.0.self_attn.nsa.k_compress.pos_emb'", "outside the data region of 64 bytes"}},
      {"JSON sent as safetensors", "keep", testing::mixed_doc(8), AdapterEncoding::kSafetensors,
       StatusCode::kInvalidArgument, {"application/json"}},
      {"safetensors sent as JSON", "keep", testing::safetensors_image("{}", ""), AdapterEncoding::kJson,
       StatusCode::kInvalidArgument, {"application/octet-stream"}},
      {"path traversal", "../x", testing::mixed_doc(8), AdapterEncoding::kJson, StatusCode::kInvalidArgument,
       {"adapter name '../x'", "path separator '/' at position 2"}},
      {"path separator", "a/b", testing::mixed_doc(8), AdapterEncoding::kJson, StatusCode::kInvalidArgument,
       {"path separator '/' at position 1"}},
      {"backslash", "a\\b", testing::mixed_doc(8), AdapterEncoding::kJson, StatusCode::kInvalidArgument,
       {"path separator '\\' at position 1"}},
      {"empty name", "", testing::mixed_doc(8), AdapterEncoding::kJson, StatusCode::kInvalidArgument,
       {"adapter name is empty"}},
      {"dot", ".", testing::mixed_doc(8), AdapterEncoding::kJson, StatusCode::kInvalidArgument,
       {"adapter name '.' is a path component"}},
      {"dot dot", "..", testing::mixed_doc(8), AdapterEncoding::kJson, StatusCode::kInvalidArgument,
       {"adapter name '..' is a path component"}},
      {"newline", "x\n", testing::mixed_doc(8), AdapterEncoding::kJson, StatusCode::kInvalidArgument,
       {"adapter name 'x\\x0a'", "control character 0x0a at position 1"}},
      {"65 characters", std::string(65, 'a'), testing::mixed_doc(8), AdapterEncoding::kJson,
       StatusCode::kInvalidArgument, {"is 65 characters long; at most 64"}},
      {"hidden file name", ".keep", testing::mixed_doc(8), AdapterEncoding::kJson, StatusCode::kInvalidArgument,
       {"must start with a letter or digit"}},
      {"space", "a b", testing::mixed_doc(8), AdapterEncoding::kJson, StatusCode::kInvalidArgument,
       {"contains ' ' at position 1"}},
  };
  ASSERT_GE(cases.size(), 15u);

  TempDir dir;
  AdapterRegistry r(test_shape(), "", dir.path(), kLargeBudget);
  const std::string keep_doc = mixed_doc(1);
  ASSERT_TRUE(r.put("keep", keep_doc, AdapterEncoding::kJson).is_ok());
  ASSERT_TRUE(r.put("other", mixed_doc(2), AdapterEncoding::kJson).is_ok());
  std::shared_ptr<const Adapter> keep_before = pin_ok(r, "keep");
  const auto files_before = directory_contents(dir.path());
  const auto list_before = identity(r.list());
  const int64_t loads_before = r.stats().loads_total;

  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    Result<AdapterPutResult> put = r.put(c.name, c.body, c.encoding);
    ASSERT_FALSE(put.is_ok());
    EXPECT_EQ(put.status().code(), c.code) << put.status().message();
    for (const std::string& part : c.message_has) {
      EXPECT_NE(put.status().message().find(part), std::string::npos)
          << "'" << part << "' not in: " << put.status().message();
    }
    EXPECT_EQ(directory_contents(dir.path()), files_before);
    EXPECT_EQ(identity(r.list()), list_before);
    EXPECT_EQ(pin_ok(r, "keep"), keep_before);  // the very same version object
    EXPECT_EQ(r.stats().loads_total, loads_before);
  }

  // Hostile names through the other entry points.
  for (const std::string name : {"../keep", "a/b", "", ".", "..", "x\n"}) {
    EXPECT_EQ(r.get(name).status().code(), StatusCode::kInvalidArgument) << name;
    EXPECT_EQ(r.pin(name).status().code(), StatusCode::kInvalidArgument) << name;
    EXPECT_EQ(r.remove(name).code(), StatusCode::kInvalidArgument) << name;
  }
  EXPECT_EQ(r.get("nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.pin("nope").status().message(), "adapter 'nope' is not registered");
  EXPECT_EQ(r.remove("nope").code(), StatusCode::kNotFound);
  EXPECT_EQ(directory_contents(dir.path()), files_before);
  EXPECT_EQ(identity(r.list()), list_before);
}

// Eight threads put, replace, delete, pin and list at random for two seconds, with a
// budget small enough that eviction and reload happen all the time. Afterwards memory and
// disk agree, and a restart sees the same state.
TEST(AdapterRegistry, ConcurrentMutationsAndPinsEndConsistent) {
  TempDir dir;
  constexpr int kNames = 6, kVersions = 4, kThreads = 8;
  std::vector<std::string> docs;
  std::set<std::string> known_digests;
  for (int v = 0; v < kVersions; ++v) {
    docs.push_back(mixed_doc(100 + v));
    known_digests.insert(sha256_hex(docs.back()));
  }
  const int64_t one = static_cast<int64_t>(
      adapter_resident_bytes(*parse_adapter_document(docs[0], AdapterEncoding::kJson, test_shape(), "x").value()));
  AdapterRegistry r(test_shape(), "", dir.path(), 3 * one);

  std::atomic<bool> stop{false};
  std::atomic<int64_t> ops{0}, failures{0};
  auto worker = [&](int seed) {
    std::mt19937 rng(seed);
    std::vector<std::pair<std::shared_ptr<const Adapter>, std::vector<float>>> held;
    while (!stop.load()) {
      const std::string name = numbered("n", rng() % kNames);
      switch (rng() % 6) {
        case 0:
        case 1: {
          Result<AdapterPutResult> p = r.put(name, docs[rng() % kVersions], AdapterEncoding::kJson);
          if (!p.is_ok()) failures.fetch_add(1);
          break;
        }
        case 2: {
          const Status s = r.remove(name);
          if (!s.is_ok() && s.code() != StatusCode::kNotFound) failures.fetch_add(1);
          break;
        }
        case 3:
        case 4: {
          Result<std::shared_ptr<const Adapter>> p = r.pin(name);
          if (p.is_ok()) {
            if (p.value()->name() != name || !known_digests.count(p.value()->sha256())) failures.fetch_add(1);
            held.emplace_back(p.value(), p.value()->mixed()->gates);
          } else if (p.status().code() != StatusCode::kNotFound) {
            failures.fetch_add(1);
          }
          break;
        }
        default: {
          for (const AdapterInfo& info : r.list()) {
            if (!known_digests.count(info.sha256)) failures.fetch_add(1);
          }
          break;
        }
      }
      // Requests finish at random; what they pinned never changed underneath them.
      if (held.size() > 4 || rng() % 3 == 0) {
        if (!held.empty()) {
          if (held.front().first->mixed()->gates != held.front().second) failures.fetch_add(1);
          held.erase(held.begin());
        }
      }
      ops.fetch_add(1);
    }
    for (const auto& [adapter, gates] : held) {
      if (adapter->mixed()->gates != gates) failures.fetch_add(1);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t + 1);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  stop = true;
  for (std::thread& t : threads) t.join();

  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(ops.load(), 100);
  const AdapterStats stats = r.stats();
  EXPECT_GT(stats.evictions_total, 0);
  EXPECT_TRUE(temp_files_in(dir.path()).empty());

  // Memory agrees with disk: the same names, and each file holds the registered version.
  const std::vector<AdapterInfo> listed = r.list();
  std::set<std::string> on_disk;
  for (const auto& [file, bytes] : directory_contents(dir.path())) on_disk.insert(file);
  std::set<std::string> expected_files;
  for (const AdapterInfo& info : listed) {
    expected_files.insert(info.name + ".json");
    EXPECT_EQ(sha256_hex(read_file(dir.file(info.name + ".json"))), info.sha256) << info.name;
    Result<std::shared_ptr<const Adapter>> p = r.pin(info.name);
    ASSERT_TRUE(p.is_ok()) << p.status().message();
    EXPECT_EQ(p.value()->sha256(), info.sha256);
  }
  EXPECT_EQ(on_disk, expected_files);

  AdapterRegistry restarted(test_shape(), "", dir.path(), kLargeBudget);
  restarted.load_directory();
  EXPECT_EQ(identity(restarted.list()), identity(listed));
}

}  // namespace
}  // namespace hotswap
