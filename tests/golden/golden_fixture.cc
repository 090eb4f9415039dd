#include "golden_fixture.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace hotswap::testing {

std::string golden_dir() { return std::string(HOTSWAP_SOURCE_DIR) + "/tests/golden"; }

std::vector<std::string> golden_model_names() {
  // Listed, not discovered: a fixture folder that goes missing fails its tests (and
  // GoldenFixtures.ModelFoldersAreExactlyTheListedOnes) instead of silently not running.
  return {"llama_bf16", "llama_f32", "phi3_bf16", "phi3_f32", "phi3_longrope_f32", "qwen2_bf16", "qwen2_f32"};
}

std::vector<std::string> golden_model_folders() {
  std::vector<std::string> names;
  const std::filesystem::path dir = golden_dir() + "/models";
  if (!std::filesystem::is_directory(dir)) return names;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.is_directory()) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

GoldenModel load_golden_model(const std::string& name) {
  GoldenModel m;
  m.dir = golden_dir() + "/models/" + name;
  std::ifstream in(m.dir + "/reference.json");
  if (!in) throw std::runtime_error("missing " + m.dir + "/reference.json");
  const auto j = nlohmann::json::parse(in);
  m.dtype = j.at("dtype").get<std::string>();
  for (const auto& p : j.at("prompts")) {
    PromptLogits pl;
    pl.ids = p.at("ids").get<std::vector<int32_t>>();
    const auto shape = p.at("shape").get<std::vector<int64_t>>();
    pl.logits.resize(static_cast<size_t>(shape[0] * shape[1]));
    std::ifstream f(m.dir + "/" + p.at("logits_file").get<std::string>(), std::ios::binary);
    f.read(reinterpret_cast<char*>(pl.logits.data()), static_cast<std::streamsize>(pl.logits.size() * 4));
    if (!f) throw std::runtime_error("short logits file in " + m.dir);
    m.prompts.push_back(std::move(pl));
  }
  for (const auto& g : j.at("greedy"))
    m.greedy.push_back({g.at("prompt_ids").get<std::vector<int32_t>>(), g.at("output_ids").get<std::vector<int32_t>>()});
  return m;
}

}  // namespace hotswap::testing
