// Rotary position embedding as transformers computes it (rotate_half convention: dimension
// i pairs with i + rotary_dim/2), for the default, linear, llama3 and longrope variants.
#pragma once

#include <vector>

#include "model/model_config.h"

namespace hotswap {

class RotaryEmbedding {
 public:
  explicit RotaryEmbedding(const ModelConfig& config);

  int rotary_dim() const { return rotary_dim_; }
  // Fills cos/sin [rotary_dim/2] for one position. `sequence_length` (the largest position
  // of the sequence in this step, plus one) picks longrope's short or long factors, as
  // transformers does per forward call.
  void angles(int position, int sequence_length, float* cos_out, float* sin_out) const;
  // Rotates the first rotary_dim dims of each of `num_heads` vectors of size head_dim.
  static void apply(float* x, int num_heads, int head_dim, int rotary_dim, const float* cos, const float* sin);

 private:
  int rotary_dim_ = 0;
  int long_threshold_ = 0;          // longrope: lengths above this use long factors
  float attention_factor_ = 1.0f;
  std::vector<float> inv_freq_;       // [rotary_dim/2]
  std::vector<float> long_inv_freq_;  // longrope only
};

}  // namespace hotswap
