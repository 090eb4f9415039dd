// Owns the bytes of the paged KV cache. Knows nothing about sequences or block ownership;
// BlockPool decides which blocks are in use. Elements are float32 or bf16 (layout().dtype);
// the typed accessors check that the caller asks for the stored type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/check.h"
#include "core/dtype.h"
#include "kv_cache/kv_layout.h"

namespace hotswap {

// One row into a bf16 cache: each element rounded to nearest even (core/dtype.h, as PyTorch).
inline void store_kv_row_bf16(const float* src, size_t n, uint16_t* dst) {
  for (size_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

class KvStorage {
 public:
  explicit KvStorage(const KvLayout& layout);

  const KvLayout& layout() const { return layout_; }
  KvDtype dtype() const { return layout_.dtype; }

  // float32 storage only.
  float* keys(int layer) { return f32(k_, layer); }
  float* values(int layer) { return f32(v_, layer); }
  const float* keys(int layer) const { return const_cast<KvStorage*>(this)->keys(layer); }
  const float* values(int layer) const { return const_cast<KvStorage*>(this)->values(layer); }
  // bf16 storage only: the raw 16-bit patterns.
  uint16_t* keys_bf16(int layer) { return bf16(k16_, layer); }
  uint16_t* values_bf16(int layer) { return bf16(v16_, layer); }
  // Either type: the layer's base address (what a PagedKvView points at).
  const void* key_data(int layer) const;
  const void* value_data(int layer) const;
  void* key_data(int layer) { return const_cast<void*>(static_cast<const KvStorage*>(this)->key_data(layer)); }
  void* value_data(int layer) { return const_cast<void*>(static_cast<const KvStorage*>(this)->value_data(layer)); }

 private:
  float* f32(std::vector<std::vector<float>>& s, int layer) {
    HS_CHECK(layout_.dtype == KvDtype::kF32) << "float32 access to a " << kv_dtype_name(layout_.dtype) << " KV cache";
    return s[static_cast<size_t>(layer)].data();
  }
  uint16_t* bf16(std::vector<std::vector<uint16_t>>& s, int layer) {
    HS_CHECK(layout_.dtype == KvDtype::kBf16) << "bf16 access to a " << kv_dtype_name(layout_.dtype) << " KV cache";
    return s[static_cast<size_t>(layer)].data();
  }

  KvLayout layout_;
  // [layer] -> [num_blocks, Hkv, block_size, d]; only the pair of the layout's dtype is filled.
  std::vector<std::vector<float>> k_, v_;
  std::vector<std::vector<uint16_t>> k16_, v16_;
};

}  // namespace hotswap
