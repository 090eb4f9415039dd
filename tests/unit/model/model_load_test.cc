// Loading Hugging Face directories: sharded checkpoints load like single files, and every
// missing tensor, wrong shape, unsupported architecture or rope type is an error that
// names it.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/load_error.h"
#include "core/mapped_file.h"
#include "model/model.h"
#include "core/safetensors_file.h"
#include "runner/sequence_session.h"

namespace hotswap {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kTiny = std::string(HOTSWAP_SOURCE_DIR) + "/tests/golden/models/qwen2_f32";

class TempModelDir {
 public:
  TempModelDir() : dir_(fs::temp_directory_path() / ("hotswap_model_test_" + std::to_string(::getpid()) + "_" +
                                                    std::to_string(counter_++))) {
    fs::create_directories(dir_);
    for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"})
      fs::copy_file(fs::path(kTiny) / f, dir_ / f);
  }
  ~TempModelDir() { fs::remove_all(dir_); }
  std::string path() const { return dir_.string(); }
  json config() const { return json::parse(read_file((dir_ / "config.json").string())); }
  void write_config(const json& j) const { std::ofstream(dir_ / "config.json") << j.dump(); }

 private:
  static inline int counter_ = 0;
  fs::path dir_;
};

std::string load_error(const std::string& dir) {
  try {
    Model::load(dir);
  } catch (const LoadError& e) {
    return e.what();
  }
  return "";
}

// Writes `tensors` (name -> view) as one safetensors file.
void write_safetensors(const fs::path& path, const std::map<std::string, TensorView>& tensors) {
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& [name, v] : tensors) {
    header[name] = {{"dtype", std::string(dtype_name(v.dtype))}, {"shape", v.shape},
                    {"data_offsets", {offset, offset + v.nbytes()}}};
    offset += v.nbytes();
  }
  const std::string text = header.dump();
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = text.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << text;
  for (const auto& [name, v] : tensors) out.write(static_cast<const char*>(v.data), static_cast<std::streamsize>(v.nbytes()));
}

TEST(ModelLoad, UnsupportedArchitectureIsNamed) {
  TempModelDir d;
  json c = d.config();
  c["model_type"] = "gpt2";
  d.write_config(c);
  EXPECT_NE(load_error(d.path()).find("unsupported architecture: model_type 'gpt2'"), std::string::npos);
}

TEST(ModelLoad, UnsupportedRopeTypeIsNamed) {
  TempModelDir d;
  json c = d.config();
  c.erase("rope_parameters");
  c["rope_theta"] = 10000.0;
  c["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  d.write_config(c);
  EXPECT_NE(load_error(d.path()).find("unsupported rope type 'yarn'"), std::string::npos);
}

TEST(ModelLoad, ClassicRopeKeysEqualTransformers5RopeParameters) {
  // transformers < 5 writes rope_theta at top level; >= 5 writes rope_parameters.
  TempModelDir d;
  json c = d.config();
  const double theta = c["rope_parameters"]["rope_theta"].get<double>();
  c.erase("rope_parameters");
  c["rope_theta"] = theta;
  c["rope_scaling"] = nullptr;
  d.write_config(c);
  auto a = Model::load(kTiny), b = Model::load(d.path());
  const std::vector<int32_t> ids = {5, 9, 200, 17};
  SequenceSession sa(*a, 8), sb(*b, 8);
  EXPECT_EQ(sa.append(ids, true), sb.append(ids, true));
}

TEST(ModelLoad, MissingTensorAndWrongShapeAreNamed) {
  const SafetensorsFile file(kTiny + "/model.safetensors");
  {
    TempModelDir d;
    auto tensors = file.header().tensors;
    tensors.erase("model.layers.1.mlp.up_proj.weight");
    write_safetensors(fs::path(d.path()) / "model.safetensors", tensors);
    EXPECT_NE(load_error(d.path()).find("missing tensor 'model.layers.1.mlp.up_proj.weight'"), std::string::npos)
        << load_error(d.path());
  }
  {
    TempModelDir d;
    auto tensors = file.header().tensors;
    TensorView& v = tensors.at("model.layers.0.self_attn.k_proj.weight");
    v.shape = {v.shape[1], v.shape[0]};
    write_safetensors(fs::path(d.path()) / "model.safetensors", tensors);
    const std::string e = load_error(d.path());
    EXPECT_NE(e.find("tensor 'model.layers.0.self_attn.k_proj.weight' has shape [64, 32], expected [32, 64]"),
              std::string::npos)
        << e;
  }
  {
    TempModelDir d;
    fs::remove(fs::path(d.path()) / "model.safetensors");
    EXPECT_NE(load_error(d.path()).find("no model.safetensors or model.safetensors.index.json"), std::string::npos);
  }
}

TEST(ModelLoad, ShardedCheckpointEqualsSingleFile) {
  const SafetensorsFile file(kTiny + "/model.safetensors");
  TempModelDir d;
  fs::remove(fs::path(d.path()) / "model.safetensors");
  std::map<std::string, TensorView> shard[2];
  json weight_map = json::object();
  int i = 0;
  for (const auto& [name, v] : file.header().tensors) {
    const int s = i++ % 2;
    shard[s][name] = v;
    weight_map[name] = "model-0000" + std::to_string(s + 1) + "-of-00002.safetensors";
  }
  for (int s = 0; s < 2; ++s)
    write_safetensors(fs::path(d.path()) / ("model-0000" + std::to_string(s + 1) + "-of-00002.safetensors"), shard[s]);
  std::ofstream(fs::path(d.path()) / "model.safetensors.index.json") << json{{"weight_map", weight_map}}.dump();
  auto a = Model::load(kTiny), b = Model::load(d.path());
  const std::vector<int32_t> ids = {1, 2, 3, 300, 7};
  SequenceSession sa(*a, 8), sb(*b, 8);
  EXPECT_EQ(sa.append(ids, true), sb.append(ids, true));
}

TEST(ModelLoad, ShardIndexCannotPointOutsideTheDirectory) {
  TempModelDir d;
  fs::remove(fs::path(d.path()) / "model.safetensors");
  std::ofstream(fs::path(d.path()) / "model.safetensors.index.json")
      << json{{"weight_map", {{"model.norm.weight", "../../etc/passwd"}}}}.dump();
  EXPECT_NE(load_error(d.path()).find("names a file outside the model directory"), std::string::npos);
}

}  // namespace
}  // namespace hotswap
