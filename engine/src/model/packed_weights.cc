#include "model/packed_weights.h"

#include <chrono>
#include <utility>

namespace hotswap {
namespace {

uint64_t packed_bytes(const TensorView& t) {
  const uint64_t words = static_cast<uint64_t>(kernels::bf16_packed_words(t.shape[0], t.shape[1]));
  return (words * 4 + 63) / 64 * 64;  // each matrix 64-byte aligned
}

}  // namespace

std::unique_ptr<PackedBf16Weights> PackedBf16Weights::pack(const ModelWeights& weights) {
  const auto start = std::chrono::steady_clock::now();
  std::unique_ptr<PackedBf16Weights> p(new PackedBf16Weights());
  p->layers.resize(weights.layers.size());
  std::vector<std::pair<const TensorView*, kernels::Bf16Packed*>> entries;
  for (size_t l = 0; l < weights.layers.size(); ++l) {
    const LayerWeights& w = weights.layers[l];
    PackedLayer& t = p->layers[l];
    for (auto [src, dst] : {std::pair{&w.q_proj, &t.q_proj}, {&w.k_proj, &t.k_proj}, {&w.v_proj, &t.v_proj},
                            {&w.o_proj, &t.o_proj}, {&w.gate_proj, &t.gate_proj}, {&w.up_proj, &t.up_proj},
                            {&w.down_proj, &t.down_proj}})
      entries.emplace_back(src, dst);
  }
  entries.emplace_back(&weights.lm_head, &p->lm_head);
  std::erase_if(entries, [](const auto& e) { return e.first->dtype != DType::kBF16 || e.first->shape.size() != 2; });
  for (const auto& e : entries) p->bytes_ += packed_bytes(*e.first);
  p->memory_ = allocate_huge_buffer(p->bytes_);
  auto* at = static_cast<uint8_t*>(p->memory_.get());
  for (const auto& [src, dst] : entries) {
    auto* words = reinterpret_cast<uint32_t*>(at);
    kernels::pack_bf16_weights(*src, words);
    *dst = kernels::Bf16Packed{words, src->shape[0], src->shape[1]};
    at += packed_bytes(*src);
  }
  p->seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return p;
}

}  // namespace hotswap
