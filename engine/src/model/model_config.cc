#include "model/model_config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/load_error.h"
#include "core/mapped_file.h"

namespace hotswap {
namespace {

using nlohmann::json;

class ConfigReader {
 public:
  ConfigReader(const json& j, const std::string& path) : j_(j), path_(path) {}

  int required_int(const char* key) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) throw LoadError(path_, std::string("missing required key '") + key + "'");
    if (!it->is_number_integer() || it->get<int64_t>() < 0)
      throw LoadError(path_, std::string("key '") + key + "' must be a non-negative integer, got " + it->dump());
    return it->get<int>();
  }
  int optional_int(const char* key, int fallback) const {
    auto it = j_.find(key);
    return (it == j_.end() || it->is_null()) ? fallback : required_int(key);
  }
  double optional_number(const json& obj, const char* key, double fallback) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return fallback;
    if (!it->is_number()) throw LoadError(path_, std::string("key '") + key + "' must be a number, got " + it->dump());
    return it->get<double>();
  }
  bool optional_bool(const char* key, bool fallback) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) throw LoadError(path_, std::string("key '") + key + "' must be a boolean, got " + it->dump());
    return it->get<bool>();
  }

  const json& j_;
  const std::string& path_;
};

void append_ids(const json& v, std::vector<int32_t>* out) {
  if (v.is_number_integer()) {
    out->push_back(v.get<int32_t>());
  } else if (v.is_array()) {
    for (const auto& x : v)
      if (x.is_number_integer()) out->push_back(x.get<int32_t>());
  }
}

std::vector<double> number_list(const json& obj, const char* key, const std::string& path) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_array()) throw LoadError(path, std::string("rope scaling needs a list '") + key + "'");
  std::vector<double> out;
  for (const auto& x : *it) {
    if (!x.is_number()) throw LoadError(path, std::string("rope '") + key + "' must hold numbers");
    out.push_back(x.get<double>());
  }
  return out;
}

// Transformers >= 5 writes `rope_parameters` (theta inside); older files write
// `rope_theta` and an optional `rope_scaling`. Both describe the same thing.
RopeConfig parse_rope(const json& j, const ConfigReader& r, const ModelConfig& c, const std::string& path) {
  RopeConfig rope;
  json params = json::object();
  if (auto it = j.find("rope_parameters"); it != j.end() && it->is_object()) params = *it;
  if (auto it = j.find("rope_scaling"); it != j.end() && it->is_object())
    for (auto& [k, v] : it->items()) params[k] = v;
  rope.theta = r.optional_number(params, "rope_theta", r.optional_number(j, "rope_theta", 10000.0));
  rope.partial_rotary_factor =
      r.optional_number(params, "partial_rotary_factor", r.optional_number(j, "partial_rotary_factor", 1.0));
  std::string type = "default";
  if (auto it = params.find("rope_type"); it != params.end() && it->is_string()) type = it->get<std::string>();
  else if (auto it2 = params.find("type"); it2 != params.end() && it2->is_string()) type = it2->get<std::string>();
  rope.factor = r.optional_number(params, "factor", 1.0);
  rope.original_max_position_embeddings = static_cast<int>(r.optional_number(
      params, "original_max_position_embeddings", r.optional_number(j, "original_max_position_embeddings", 0)));

  if (type == "default") {
    rope.type = RopeType::kDefault;
  } else if (type == "linear") {
    rope.type = RopeType::kLinear;
  } else if (type == "llama3") {
    rope.type = RopeType::kLlama3;
    rope.low_freq_factor = r.optional_number(params, "low_freq_factor", 1.0);
    rope.high_freq_factor = r.optional_number(params, "high_freq_factor", 4.0);
    if (rope.original_max_position_embeddings <= 0)
      throw LoadError(path, "rope type 'llama3' needs original_max_position_embeddings");
  } else if (type == "longrope" || type == "su") {
    rope.type = RopeType::kLongRope;
    rope.short_factor = number_list(params, "short_factor", path);
    rope.long_factor = number_list(params, "long_factor", path);
    const size_t half = static_cast<size_t>(c.head_dim * rope.partial_rotary_factor) / 2;
    if (rope.short_factor.size() != half || rope.long_factor.size() != half)
      throw LoadError(path, "longrope short_factor/long_factor must have rotary_dim/2 = " + std::to_string(half) +
                                " entries, got " + std::to_string(rope.short_factor.size()) + " and " +
                                std::to_string(rope.long_factor.size()));
    if (rope.original_max_position_embeddings <= 0) rope.original_max_position_embeddings = c.max_position_embeddings;
    // As transformers: an explicit attention_factor wins; otherwise derived from the
    // context extension ratio.
    const double ratio = params.contains("factor") && !params["factor"].is_null()
                             ? rope.factor
                             : static_cast<double>(c.max_position_embeddings) / rope.original_max_position_embeddings;
    double attention_factor = 1.0;
    if (ratio > 1.0) attention_factor = std::sqrt(1.0 + std::log(ratio) / std::log(rope.original_max_position_embeddings));
    rope.attention_factor = r.optional_number(params, "attention_factor", attention_factor);
  } else {
    throw LoadError(path, "unsupported rope type '" + type + "' (supported: default, linear, llama3, longrope/su)");
  }
  return rope;
}

}  // namespace

ModelConfig parse_model_config(const std::string& config_json, const std::string& generation_config_json,
                               const std::string& path) {
  json j = json::parse(config_json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) throw LoadError(path, "config.json is not a JSON object");
  ConfigReader r(j, path);
  ModelConfig c;
  auto mt = j.find("model_type");
  if (mt == j.end() || !mt->is_string()) throw LoadError(path, "missing required key 'model_type'");
  c.model_type = mt->get<std::string>();
  if (c.model_type == "llama") c.family = ModelFamily::kLlama;
  else if (c.model_type == "qwen2") c.family = ModelFamily::kQwen2;
  else if (c.model_type == "phi3") c.family = ModelFamily::kPhi3;
  else
    throw LoadError(path, "unsupported architecture: model_type '" + c.model_type + "' (supported: llama, qwen2, phi3)");

  c.vocab_size = r.required_int("vocab_size");
  c.hidden_size = r.required_int("hidden_size");
  c.intermediate_size = r.required_int("intermediate_size");
  c.num_layers = r.required_int("num_hidden_layers");
  c.num_heads = r.required_int("num_attention_heads");
  c.num_kv_heads = r.optional_int("num_key_value_heads", c.num_heads);
  if (c.num_heads <= 0 || c.num_kv_heads <= 0 || c.num_heads % c.num_kv_heads != 0)
    throw LoadError(path, "num_attention_heads (" + std::to_string(c.num_heads) +
                              ") must be a positive multiple of num_key_value_heads (" + std::to_string(c.num_kv_heads) + ")");
  c.head_dim = r.optional_int("head_dim", c.num_heads ? c.hidden_size / c.num_heads : 0);
  if (c.head_dim <= 0 || c.head_dim % 2 != 0)
    throw LoadError(path, "head_dim must be a positive even number, got " + std::to_string(c.head_dim));
  c.max_position_embeddings = r.optional_int("max_position_embeddings", 4096);
  c.rms_norm_eps = static_cast<float>(r.optional_number(j, "rms_norm_eps", 1e-6));
  c.tie_word_embeddings = r.optional_bool("tie_word_embeddings", false);
  if (auto act = j.find("hidden_act"); act != j.end() && act->is_string() && *act != "silu")
    throw LoadError(path, "unsupported hidden_act '" + act->get<std::string>() + "' (supported: silu)");

  switch (c.family) {
    case ModelFamily::kLlama:
      c.attention_bias = c.o_proj_bias = r.optional_bool("attention_bias", false);
      c.mlp_bias = r.optional_bool("mlp_bias", false);
      break;
    case ModelFamily::kQwen2:
      c.attention_bias = true;
      if (r.optional_bool("use_sliding_window", false))
        throw LoadError(path, "qwen2 use_sliding_window=true is not supported");
      break;
    case ModelFamily::kPhi3:
      break;
  }
  c.rope = parse_rope(j, r, c, path);
  if (c.rotary_dim() <= 0 || c.rotary_dim() % 2 != 0 || c.rotary_dim() > c.head_dim)
    throw LoadError(path, "partial_rotary_factor gives an invalid rotary dimension " + std::to_string(c.rotary_dim()));

  c.bos_token_id = r.optional_int("bos_token_id", -1);
  if (auto e = j.find("eos_token_id"); e != j.end()) append_ids(*e, &c.eos_token_ids);
  if (!generation_config_json.empty()) {
    json g = json::parse(generation_config_json, nullptr, false);
    if (!g.is_discarded() && g.is_object()) {
      if (auto e = g.find("eos_token_id"); e != g.end()) append_ids(*e, &c.eos_token_ids);
    }
  }
  std::sort(c.eos_token_ids.begin(), c.eos_token_ids.end());
  c.eos_token_ids.erase(std::unique(c.eos_token_ids.begin(), c.eos_token_ids.end()), c.eos_token_ids.end());
  return c;
}

ModelConfig load_model_config(const std::string& model_dir) {
  namespace fs = std::filesystem;
  const std::string config_path = (fs::path(model_dir) / "config.json").string();
  if (!fs::exists(config_path)) throw LoadError(model_dir, "no config.json in the model directory");
  const std::string gen_path = (fs::path(model_dir) / "generation_config.json").string();
  return parse_model_config(read_file(config_path), fs::exists(gen_path) ? read_file(gen_path) : "", config_path);
}

}  // namespace hotswap
