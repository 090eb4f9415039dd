// Reads the reference fixtures under tests/golden/models/<name>/.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hotswap::testing {

struct PromptLogits {
  std::vector<int32_t> ids;
  std::vector<float> logits;  // [ids.size(), vocab]
};

struct GreedyCase {
  std::vector<int32_t> prompt_ids, output_ids;
};

struct GoldenModel {
  std::string dir;
  std::string dtype;  // "float32" | "bfloat16"
  std::vector<PromptLogits> prompts;
  std::vector<GreedyCase> greedy;
};

std::string golden_dir();
GoldenModel load_golden_model(const std::string& name);
// The reference models every golden suite runs on (fixed list: a missing folder is a failure).
std::vector<std::string> golden_model_names();
// The folders actually present under tests/golden/models, sorted.
std::vector<std::string> golden_model_folders();

}  // namespace hotswap::testing
