#include "model/weights.h"

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/load_error.h"
#include "core/mapped_file.h"

namespace hotswap {
namespace fs = std::filesystem;

TensorView slice_rows(const TensorView& t, int64_t row_begin, int64_t num_rows) {
  TensorView v = t;
  v.shape[0] = num_rows;
  v.data = static_cast<const uint8_t*>(t.data) + row_begin * t.cols() * static_cast<int64_t>(dtype_size(t.dtype));
  return v;
}

namespace {

std::vector<std::string> shard_paths(const std::string& dir) {
  const fs::path single = fs::path(dir) / "model.safetensors";
  if (fs::exists(single)) return {single.string()};
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  if (!fs::exists(index))
    throw LoadError(dir, "no model.safetensors or model.safetensors.index.json in the model directory");
  auto j = nlohmann::json::parse(read_file(index.string()), nullptr, false);
  if (j.is_discarded() || !j.contains("weight_map") || !j["weight_map"].is_object())
    throw LoadError(index.string(), "missing object 'weight_map'");
  std::set<std::string> files;
  for (auto& [name, file] : j["weight_map"].items()) {
    if (!file.is_string()) throw LoadError(index.string(), "weight_map['" + name + "'] must be a file name");
    const std::string f = file.get<std::string>();
    if (f.find('/') != std::string::npos || f == "..")
      throw LoadError(index.string(), "weight_map['" + name + "'] names a file outside the model directory");
    files.insert(f);
  }
  std::vector<std::string> out;
  for (const auto& f : files) out.push_back((fs::path(dir) / f).string());
  return out;
}

class TensorFinder {
 public:
  TensorFinder(const std::vector<std::unique_ptr<SafetensorsFile>>& files, const std::string& dir) : dir_(dir) {
    for (const auto& f : files)
      for (const auto& [name, view] : f->header().tensors) tensors_[name] = view;
  }

  bool has(const std::string& name) const { return tensors_.count(name) != 0; }

  TensorView get(const std::string& name, std::vector<int64_t> expected) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) throw LoadError(dir_, "missing tensor '" + name + "' (expected shape " + shape_string(expected) + ")");
    const TensorView& v = it->second;
    if (v.shape != expected)
      throw LoadError(dir_, "tensor '" + name + "' has shape " + shape_string(v.shape) + ", expected " + shape_string(expected));
    if (v.dtype != DType::kF32 && v.dtype != DType::kBF16 && v.dtype != DType::kF16)
      throw LoadError(dir_, "tensor '" + name + "' has dtype " + std::string(dtype_name(v.dtype)) +
                                "; supported: F32, F16, BF16");
    return v;
  }
  TensorView optional(const std::string& name, std::vector<int64_t> expected, bool wanted) const {
    if (!wanted) return {};
    return get(name, std::move(expected));
  }

 private:
  std::map<std::string, TensorView> tensors_;
  const std::string& dir_;
};

}  // namespace

ModelWeights::ModelWeights(const std::string& model_dir, const ModelConfig& c) {
  for (const auto& path : shard_paths(model_dir)) files_.push_back(std::make_unique<SafetensorsFile>(path));
  const TensorFinder t(files_, model_dir);
  const int64_t D = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const int64_t q_rows = static_cast<int64_t>(c.num_heads) * c.head_dim;
  const int64_t kv_rows = static_cast<int64_t>(c.num_kv_heads) * c.head_dim;

  embed_tokens = t.get("model.embed_tokens.weight", {V, D});
  final_norm = t.get("model.norm.weight", {D});
  if (t.has("lm_head.weight")) lm_head = t.get("lm_head.weight", {V, D});
  else if (c.tie_word_embeddings) lm_head = embed_tokens;
  else lm_head = t.get("lm_head.weight", {V, D});  // throws: missing, and not tied

  layers.resize(c.num_layers);
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    LayerWeights& L = layers[i];
    L.input_norm = t.get(p + "input_layernorm.weight", {D});
    L.post_attention_norm = t.get(p + "post_attention_layernorm.weight", {D});
    if (c.family == ModelFamily::kPhi3) {
      const TensorView qkv = t.get(p + "self_attn.qkv_proj.weight", {q_rows + 2 * kv_rows, D});
      L.q_proj = slice_rows(qkv, 0, q_rows);
      L.k_proj = slice_rows(qkv, q_rows, kv_rows);
      L.v_proj = slice_rows(qkv, q_rows + kv_rows, kv_rows);
      const TensorView gate_up = t.get(p + "mlp.gate_up_proj.weight", {2 * I, D});
      L.gate_proj = slice_rows(gate_up, 0, I);
      L.up_proj = slice_rows(gate_up, I, I);
    } else {
      L.q_proj = t.get(p + "self_attn.q_proj.weight", {q_rows, D});
      L.k_proj = t.get(p + "self_attn.k_proj.weight", {kv_rows, D});
      L.v_proj = t.get(p + "self_attn.v_proj.weight", {kv_rows, D});
      L.q_bias = t.optional(p + "self_attn.q_proj.bias", {q_rows}, c.attention_bias);
      L.k_bias = t.optional(p + "self_attn.k_proj.bias", {kv_rows}, c.attention_bias);
      L.v_bias = t.optional(p + "self_attn.v_proj.bias", {kv_rows}, c.attention_bias);
      L.gate_proj = t.get(p + "mlp.gate_proj.weight", {I, D});
      L.up_proj = t.get(p + "mlp.up_proj.weight", {I, D});
      L.gate_bias = t.optional(p + "mlp.gate_proj.bias", {I}, c.mlp_bias);
      L.up_bias = t.optional(p + "mlp.up_proj.bias", {I}, c.mlp_bias);
      L.down_bias = t.optional(p + "mlp.down_proj.bias", {D}, c.mlp_bias);
    }
    L.o_proj = t.get(p + "self_attn.o_proj.weight", {D, q_rows});
    L.o_bias = t.optional(p + "self_attn.o_proj.bias", {D}, c.o_proj_bias);
    L.down_proj = t.get(p + "mlp.down_proj.weight", {D, I});
  }
}

size_t ModelWeights::total_bytes() const {
  size_t n = 0;
  for (const auto& f : files_)
    for (const auto& [name, v] : f->header().tensors) n += v.nbytes();
  return n;
}

}  // namespace hotswap
