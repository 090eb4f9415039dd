#include "model_gen/random_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "core/dtype.h"
#include "core/load_error.h"
#include "model_gen/demo_tokenizer.h"

namespace hotswap {
namespace fs = std::filesystem;
using nlohmann::json;

std::vector<std::string> random_model_presets() { return {"demo", "smollm2-135m", "llama-3.2-1b"}; }

RandomModelSpec random_model_preset(const std::string& name) {
  RandomModelSpec s;
  s.preset = name;
  if (name == "demo") {
    // Small enough to answer interactively on two cores, big enough to exercise GQA.
    s.hidden_size = 256, s.intermediate_size = 704, s.num_layers = 4;
    s.num_heads = 8, s.num_kv_heads = 4, s.head_dim = 32;
    s.max_position_embeddings = 4096, s.dtype = "F32", s.init_std = 0.08f;
  } else if (name == "smollm2-135m") {
    s.hidden_size = 576, s.intermediate_size = 1536, s.num_layers = 30;
    s.num_heads = 9, s.num_kv_heads = 3, s.head_dim = 64, s.vocab_size = 49152;
    s.max_position_embeddings = 8192, s.rope_theta = 100000.0, s.dtype = "BF16";
  } else if (name == "llama-3.2-1b") {
    s.hidden_size = 2048, s.intermediate_size = 8192, s.num_layers = 16;
    s.num_heads = 32, s.num_kv_heads = 8, s.head_dim = 64, s.vocab_size = 128256;
    s.max_position_embeddings = 131072, s.llama3_rope = true, s.rope_theta = 500000.0, s.dtype = "BF16";
  } else {
    std::string valid;
    for (const auto& p : random_model_presets()) valid += (valid.empty() ? "" : ", ") + p;
    throw std::invalid_argument("unknown model preset '" + name + "'; valid: " + valid);
  }
  return s;
}

namespace {

// splitmix64: a tiny, portable, well-mixed generator (the same bytes on every platform).
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [-a, a) with a = sqrt(3) * std, i.e. variance std^2.
  float uniform(float std_dev) {
    const float u = static_cast<float>(next() >> 40) * (1.0f / 16777216.0f);
    return (2.0f * u - 1.0f) * std_dev * 1.7320508f;
  }
};

struct TensorPlan {
  std::string name;
  std::vector<int64_t> shape;
  bool ones = false;  // norm weights
};

std::vector<TensorPlan> tensor_plan(const RandomModelSpec& s, int vocab) {
  const int64_t D = s.hidden_size, I = s.intermediate_size, q = int64_t{s.num_heads} * s.head_dim,
                kv = int64_t{s.num_kv_heads} * s.head_dim;
  std::vector<TensorPlan> plan = {{"model.embed_tokens.weight", {vocab, D}}, {"model.norm.weight", {D}, true}};
  if (!s.tie_word_embeddings) plan.push_back({"lm_head.weight", {vocab, D}});
  for (int l = 0; l < s.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    plan.push_back({p + "input_layernorm.weight", {D}, true});
    plan.push_back({p + "post_attention_layernorm.weight", {D}, true});
    plan.push_back({p + "self_attn.q_proj.weight", {q, D}});
    plan.push_back({p + "self_attn.k_proj.weight", {kv, D}});
    plan.push_back({p + "self_attn.v_proj.weight", {kv, D}});
    plan.push_back({p + "self_attn.o_proj.weight", {D, q}});
    plan.push_back({p + "mlp.gate_proj.weight", {I, D}});
    plan.push_back({p + "mlp.up_proj.weight", {I, D}});
    plan.push_back({p + "mlp.down_proj.weight", {D, I}});
  }
  return plan;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw LoadError(path.string(), "cannot write");
}

void write_safetensors(const RandomModelSpec& s, int vocab, const fs::path& path) {
  const bool bf16 = s.dtype == "BF16";
  const size_t elem = bf16 ? 2 : 4;
  const auto plan = tensor_plan(s, vocab);
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& t : plan) {
    uint64_t n = 1;
    for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
    header[t.name] = {{"dtype", s.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + n * elem}}};
    offset += n * elem;
  }
  header["__metadata__"] = {{"format", "pt"}, {"generator", "hotswap make-demo-model " + s.preset}};
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data 8-byte aligned
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw LoadError(path.string(), "cannot write");
  const uint64_t len = text.size();
  std::fwrite(&len, 8, 1, f);
  std::fwrite(text.data(), 1, text.size(), f);
  std::vector<uint8_t> buf;
  uint64_t tensor_index = 0;
  for (const auto& t : plan) {
    uint64_t n = 1;
    for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
    buf.resize(n * elem);
    SplitMix64 rng{s.seed * 1000003u + tensor_index++};
    for (uint64_t i = 0; i < n; ++i) {
      const float v = t.ones ? 1.0f : rng.uniform(s.init_std);
      if (bf16) {
        const uint16_t h = f32_to_bf16(v);
        std::memcpy(&buf[i * 2], &h, 2);
      } else {
        std::memcpy(&buf[i * 4], &v, 4);
      }
    }
    if (std::fwrite(buf.data(), 1, buf.size(), f) != buf.size()) {
      std::fclose(f);
      throw LoadError(path.string(), "short write");
    }
  }
  if (std::fclose(f) != 0) throw LoadError(path.string(), "cannot close");
}

}  // namespace

void write_random_model(const RandomModelSpec& s, const std::string& out_dir) {
  fs::create_directories(out_dir);
  const DemoTokenizer tok = make_demo_tokenizer();
  const int vocab = s.vocab_size > 0 ? std::max(s.vocab_size, tok.vocab_size) : tok.vocab_size;
  json config = {{"architectures", {"LlamaForCausalLM"}},
                 {"model_type", "llama"},
                 {"vocab_size", vocab},
                 {"hidden_size", s.hidden_size},
                 {"intermediate_size", s.intermediate_size},
                 {"num_hidden_layers", s.num_layers},
                 {"num_attention_heads", s.num_heads},
                 {"num_key_value_heads", s.num_kv_heads},
                 {"head_dim", s.head_dim},
                 {"hidden_act", "silu"},
                 {"max_position_embeddings", s.max_position_embeddings},
                 {"rms_norm_eps", 1e-5},
                 {"rope_theta", s.rope_theta},
                 {"tie_word_embeddings", s.tie_word_embeddings},
                 {"attention_bias", false},
                 {"mlp_bias", false},
                 {"bos_token_id", tok.bos_id},
                 {"eos_token_id", tok.eos_ids},
                 {"torch_dtype", s.dtype == "BF16" ? "bfloat16" : "float32"}};
  if (s.llama3_rope) {
    config["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 32.0}, {"low_freq_factor", 1.0},
                              {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  }
  const fs::path dir(out_dir);
  write_text(dir / "config.json", config.dump(2));
  write_text(dir / "generation_config.json",
             json{{"bos_token_id", tok.bos_id}, {"eos_token_id", tok.eos_ids}, {"do_sample", false}}.dump(2));
  write_text(dir / "tokenizer.json", tok.tokenizer_json);
  write_text(dir / "tokenizer_config.json", tok.tokenizer_config_json);
  write_safetensors(s, vocab, dir / "model.safetensors");
}


}  // namespace hotswap
