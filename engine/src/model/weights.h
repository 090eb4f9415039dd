// The frozen base model's weights: memory-mapped safetensors (single file or sharded
// index), kept in their stored precision and shared read-only by every request.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/model_config.h"
#include "core/safetensors_file.h"

namespace hotswap {

struct LayerWeights {
  TensorView input_norm;                 // [D]
  TensorView q_proj, k_proj, v_proj;     // [H*d, D], [Hkv*d, D], [Hkv*d, D] (views into qkv_proj for phi3)
  TensorView q_bias, k_bias, v_bias;     // empty unless the model has attention biases
  TensorView o_proj, o_bias;             // [D, H*d]
  TensorView post_attention_norm;        // [D]
  TensorView gate_proj, up_proj;         // [I, D] (views into gate_up_proj for phi3)
  TensorView down_proj;                  // [D, I]
  TensorView gate_bias, up_bias, down_bias;
};

class ModelWeights {
 public:
  // Maps every shard of <model_dir> and checks each tensor the config needs for presence,
  // shape and dtype. Throws LoadError naming the tensor, expected and actual shape.
  ModelWeights(const std::string& model_dir, const ModelConfig& config);

  TensorView embed_tokens;   // [V, D]
  TensorView final_norm;     // [D]
  TensorView lm_head;        // [V, D] (embed_tokens when tied)
  std::vector<LayerWeights> layers;

  size_t total_bytes() const;        // bytes of all mapped tensor data the model uses
  DType dominant_dtype() const { return embed_tokens.dtype; }
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }  // the shards

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
};

// Rows [row_begin, row_begin + num_rows) of a 2-D view (contiguous, no copy).
TensorView slice_rows(const TensorView& t, int64_t row_begin, int64_t num_rows);

}  // namespace hotswap
