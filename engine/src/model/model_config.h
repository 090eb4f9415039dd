// config.json (+ generation_config.json) of a Hugging Face checkpoint, reduced to what the
// forward pass needs. Supports model_type llama, qwen2 and phi3.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hotswap {

enum class ModelFamily { kLlama, kQwen2, kPhi3 };

enum class RopeType {
  kDefault,   // inv_freq = theta^(-2i/d)
  kLinear,    // positions divided by factor
  kLlama3,    // Llama 3.1 wavelength-dependent scaling
  kLongRope,  // Phi-3 "su"/"longrope": per-dimension factors, short or long by length
};

struct RopeConfig {
  RopeType type = RopeType::kDefault;
  double theta = 10000.0;
  double factor = 1.0;
  // llama3
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int original_max_position_embeddings = 0;
  // longrope
  std::vector<double> short_factor, long_factor;
  double attention_factor = 1.0;  // multiplies cos and sin (longrope)
  double partial_rotary_factor = 1.0;
};

struct ModelConfig {
  ModelFamily family = ModelFamily::kLlama;
  std::string model_type;
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int max_position_embeddings = 0;
  float rms_norm_eps = 1e-6f;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v biases (qwen2 always; llama's attention_bias)
  bool o_proj_bias = false;     // llama's attention_bias also covers o_proj
  bool mlp_bias = false;
  RopeConfig rope;
  int bos_token_id = -1;
  std::vector<int32_t> eos_token_ids;  // config.json and generation_config.json, merged

  int rotary_dim() const { return static_cast<int>(head_dim * rope.partial_rotary_factor); }
};

// Parses config.json text; generation_config.json text may be empty. Throws LoadError
// naming the file and the key for anything missing, malformed or unsupported.
ModelConfig parse_model_config(const std::string& config_json, const std::string& generation_config_json,
                               const std::string& path_for_errors);

// Reads <dir>/config.json and, if present, <dir>/generation_config.json.
ModelConfig load_model_config(const std::string& model_dir);

}  // namespace hotswap
