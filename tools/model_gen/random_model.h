// Deterministic random checkpoints in Hugging Face format, made without any network: the
// built-in demo model that `serve` uses by default, and benchmark-sized shapes
// (SmolLM2-135M, Llama-3.2-1B) for load, decode and prefill measurements.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hotswap {

struct RandomModelSpec {
  std::string preset;           // "demo" | "smollm2-135m" | "llama-3.2-1b"
  int hidden_size = 0, intermediate_size = 0, num_layers = 0;
  int num_heads = 0, num_kv_heads = 0, head_dim = 0;
  int vocab_size = 0;           // 0 = the demo tokenizer's size
  int max_position_embeddings = 0;
  bool tie_word_embeddings = true;
  bool llama3_rope = false;
  double rope_theta = 10000.0;
  std::string dtype = "F32";    // "F32" | "BF16"
  float init_std = 0.02f;
  uint64_t seed = 0x5eed;
};

// Known presets; throws std::invalid_argument naming the valid ones for an unknown name.
RandomModelSpec random_model_preset(const std::string& name);
std::vector<std::string> random_model_presets();

// Writes config.json, generation_config.json, model.safetensors, tokenizer.json and
// tokenizer_config.json (with a chat template) into `out_dir` (created if needed).
// The same spec always gives byte-identical files.
void write_random_model(const RandomModelSpec& spec, const std::string& out_dir);


}  // namespace hotswap
