// The model's BF16 projections repacked once at load into the AMX tile layout
// (kernels/bf16_packed.h), used when the kernels multiply bf16 products with AMX
// (kernels::bf16_packed_applies()); linear() on the stored W otherwise. The packed copy lives in
// huge pages; the mapped checkpoint pages it replaces are then only read by the embedding.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/huge_buffer.h"
#include "kernels/bf16_packed.h"
#include "model/weights.h"

namespace hotswap {

struct PackedLayer {
  kernels::Bf16Packed q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
};

class PackedBf16Weights {
 public:
  // Packs every BF16 projection and the LM head (tensors in other dtypes stay empty: they
  // keep linear()).
  static std::unique_ptr<PackedBf16Weights> pack(const ModelWeights& weights);

  std::vector<PackedLayer> layers;
  kernels::Bf16Packed lm_head;

  uint64_t bytes() const { return bytes_; }
  double seconds() const { return seconds_; }  // the packing's wall time at load

 private:
  PackedBf16Weights() = default;

  HugeBuffer memory_;
  uint64_t bytes_ = 0;
  double seconds_ = 0;
};

}  // namespace hotswap
