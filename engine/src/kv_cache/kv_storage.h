// Owns the bytes of the paged KV cache. Knows nothing about sequences or block ownership;
// BlockPool decides which blocks are in use. Elements are float32 or bf16 (layout().dtype);
// the typed accessors check that the caller asks for the stored type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
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
  float* keys(int layer) { return f32(k_[static_cast<size_t>(layer)].get()); }
  float* values(int layer) { return f32(v_[static_cast<size_t>(layer)].get()); }
  const float* keys(int layer) const { return const_cast<KvStorage*>(this)->keys(layer); }
  const float* values(int layer) const { return const_cast<KvStorage*>(this)->values(layer); }
  // bf16 storage only: the raw 16-bit patterns.
  uint16_t* keys_bf16(int layer) { return bf16(k_[static_cast<size_t>(layer)].get()); }
  uint16_t* values_bf16(int layer) { return bf16(v_[static_cast<size_t>(layer)].get()); }
  // Either type: the layer's base address (what a PagedKvView points at).
  const void* key_data(int layer) const { return k_[static_cast<size_t>(layer)].get(); }
  const void* value_data(int layer) const { return v_[static_cast<size_t>(layer)].get(); }
  void* key_data(int layer) { return k_[static_cast<size_t>(layer)].get(); }
  void* value_data(int layer) { return v_[static_cast<size_t>(layer)].get(); }

 private:
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  using Buffer = std::unique_ptr<void, Free>;
  // A zeroed layer array, 2 MiB aligned and (on Linux) asked to live in huge pages: decode
  // walks each KV head's rows page by page across the whole array, and with 4 KiB pages
  // nearly every KV page costs a TLB miss.
  static Buffer allocate(size_t bytes);

  float* f32(void* p) {
    HS_CHECK(layout_.dtype == KvDtype::kF32) << "float32 access to a " << kv_dtype_name(layout_.dtype) << " KV cache";
    return static_cast<float*>(p);
  }
  uint16_t* bf16(void* p) {
    HS_CHECK(layout_.dtype == KvDtype::kBf16) << "bf16 access to a " << kv_dtype_name(layout_.dtype) << " KV cache";
    return static_cast<uint16_t*>(p);
  }

  KvLayout layout_;
  std::vector<Buffer> k_, v_;  // [layer] -> [num_blocks, Hkv, block_size, d] of layout_.dtype
};

}  // namespace hotswap
