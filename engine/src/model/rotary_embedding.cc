#include "model/rotary_embedding.h"

#include <cmath>
#include <numbers>

namespace hotswap {
namespace {

// transformers evaluates theta ** (2i/d) in float32; so do we, to stay within an ulp.
std::vector<float> base_inv_freq(double theta, int rotary_dim, const std::vector<double>* ext_factors) {
  std::vector<float> inv(rotary_dim / 2);
  for (int i = 0; i < rotary_dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(rotary_dim);
    const float base_pow = std::pow(static_cast<float>(theta), exponent);
    const float ext = ext_factors ? static_cast<float>((*ext_factors)[i]) : 1.0f;
    inv[i] = 1.0f / (ext * base_pow);
  }
  return inv;
}

void apply_llama3_scaling(const RopeConfig& r, std::vector<float>* inv) {
  const double old_len = r.original_max_position_embeddings;
  const double low_wavelen = old_len / r.low_freq_factor;
  const double high_wavelen = old_len / r.high_freq_factor;
  for (float& f : *inv) {
    const float wavelen = 2.0f * static_cast<float>(std::numbers::pi) / f;
    float scaled = wavelen > low_wavelen ? f / static_cast<float>(r.factor) : f;
    const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
    if (medium) {
      const float smooth = static_cast<float>((old_len / wavelen - r.low_freq_factor) /
                                              (r.high_freq_factor - r.low_freq_factor));
      scaled = (1 - smooth) * scaled / static_cast<float>(r.factor) + smooth * scaled;
    }
    f = scaled;
  }
}

}  // namespace

RotaryEmbedding::RotaryEmbedding(const ModelConfig& c) : rotary_dim_(c.rotary_dim()) {
  const RopeConfig& r = c.rope;
  switch (r.type) {
    case RopeType::kDefault:
      inv_freq_ = base_inv_freq(r.theta, rotary_dim_, nullptr);
      break;
    case RopeType::kLinear:
      inv_freq_ = base_inv_freq(r.theta, rotary_dim_, nullptr);
      for (float& f : inv_freq_) f /= static_cast<float>(r.factor);
      break;
    case RopeType::kLlama3:
      inv_freq_ = base_inv_freq(r.theta, rotary_dim_, nullptr);
      apply_llama3_scaling(r, &inv_freq_);
      break;
    case RopeType::kLongRope:
      inv_freq_ = base_inv_freq(r.theta, rotary_dim_, &r.short_factor);
      long_inv_freq_ = base_inv_freq(r.theta, rotary_dim_, &r.long_factor);
      long_threshold_ = r.original_max_position_embeddings;
      attention_factor_ = static_cast<float>(r.attention_factor);
      break;
  }
}

void RotaryEmbedding::angles(int position, int sequence_length, float* cos_out, float* sin_out) const {
  const bool use_long = !long_inv_freq_.empty() && sequence_length > long_threshold_;
  const std::vector<float>& inv = use_long ? long_inv_freq_ : inv_freq_;
  for (int i = 0; i < rotary_dim_ / 2; ++i) {
    const float angle = inv[i] * static_cast<float>(position);  // float32 product, as transformers
    cos_out[i] = std::cos(angle) * attention_factor_;
    sin_out[i] = std::sin(angle) * attention_factor_;
  }
}

void RotaryEmbedding::apply(float* x, int num_heads, int head_dim, int rotary_dim, const float* cos,
                            const float* sin) {
  const int half = rotary_dim / 2;
  for (int h = 0; h < num_heads; ++h) {
    float* v = x + static_cast<size_t>(h) * head_dim;
    for (int i = 0; i < half; ++i) {
      const float a = v[i], b = v[i + half];
      v[i] = a * cos[i] - b * sin[i];
      v[i + half] = b * cos[i] + a * sin[i];
    }
  }
}

}  // namespace hotswap
