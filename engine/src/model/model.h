// The frozen base model: configuration, memory-mapped weights and the forward pass. Loaded
// once; immutable afterwards and shared by every request. forward() uses scratch buffers
// owned by the caller's Workspace, so one Model serves any number of engine threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/engine_config.h"
#include "kernels/linear.h"
#include "kv_cache/kv_storage.h"
#include "model/forward_batch.h"
#include "model/model_config.h"
#include "model/packed_weights.h"
#include "model/quantized_weights.h"
#include "model/rotary_embedding.h"
#include "model/weights.h"

namespace hotswap {

// Activation buffers, grown on demand and reused across steps (one per engine thread).
struct Workspace {
  std::vector<float> hidden, normed, q, k, v, attn, proj, gate, up, cos, sin;
  std::vector<float> q_unrotated, k_unrotated;  // backends that read LayerInputs
};

struct ModelLoadOptions {
  WeightFormat weights = WeightFormat::kAuto;  // kQ8 / kQ4: the projections quantised (or read from the cache)
  WeightCacheOptions cache;                    // where the q8 / q4 cache is read and written
  // The precision the model will run at (see linear_precision_for): with bf16 products on an
  // AMX CPU, the BF16 projections are packed for AMX at load (model/packed_weights.h).
  MatmulPrecision matmul_precision = MatmulPrecision::kAuto;
};

class Model {
 public:
  // Loads config.json, generation_config.json and the weights of a Hugging Face model
  // directory. Throws LoadError naming what is missing or wrong.
  static std::unique_ptr<Model> load(const std::string& model_dir, const ModelLoadOptions& options = {});

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const std::string& dir() const { return dir_; }
  // The projections in q8 or q4, or null when they are used as stored (WeightFormat::kAuto).
  const QuantizedWeights* quantized() const { return quantized_.get(); }
  // The BF16 projections packed for AMX, or null (not an AMX CPU, other weights or precision).
  const PackedBf16Weights* packed() const { return packed_.get(); }

  // KV cache geometry for this model with the given block size, capacity in blocks and element type.
  KvLayout kv_layout(int block_size, int64_t num_blocks, KvDtype dtype = KvDtype::kF32) const;

  // Runs one step: writes the new tokens' K/V into `kv` and returns the wanted logits.
  Logits forward(const ForwardBatch& batch, KvStorage& kv, Workspace& ws) const;

 private:
  Model(std::string dir, ModelConfig config, const ModelLoadOptions& options);

  // Projection biases as float32, converted once at load so the kernels add them while
  // storing y (the stored tensors may be bf16/f16); empty when the model has none.
  struct LayerBiases {
    std::vector<float> q, k, v, o, gate, up, down;
  };

  std::string dir_;
  ModelConfig config_;
  ModelWeights weights_;
  RotaryEmbedding rope_;
  std::vector<LayerBiases> biases_;
  std::unique_ptr<QuantizedWeights> quantized_;
  std::unique_ptr<PackedBf16Weights> packed_;
};

// Whether `requested` multiplies bf16 products on a model whose weights are mostly `dominant`.
bool bf16_products(MatmulPrecision requested, DType dominant);

// The kernels' setting for a requested precision on this model (kAuto: bf16 products for BF16
// weights). Apply it with kernels::set_linear_precision before running the model.
kernels::LinearPrecision linear_precision_for(MatmulPrecision requested, const Model& model);

}  // namespace hotswap
