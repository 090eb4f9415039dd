#include "golden_fixture.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace hotswap::testing {

std::string golden_dir() { return std::string(HOTSWAP_SOURCE_DIR) + "/tests/golden"; }

std::vector<std::string> golden_model_names() {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(golden_dir() + "/models"))
    if (std::filesystem::exists(e.path() / "reference.json")) names.push_back(e.path().filename().string());
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
