// Owns the bytes of the paged KV cache. Knows nothing about sequences or block ownership;
// BlockPool decides which blocks are in use. Rows are float32, bf16 or q8 (layout().dtype);
// the typed accessors check that the caller asks for the stored type. The layers lie back to
// back in one array for K and one for V, so a head page (one KV head of one block of one layer,
// kv_layout.h) is addressed from the first layer's base whatever its layer: per-KV-head
// release (HeadPagePool) moves a head's rows into any free head page.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>

#include "core/check.h"
#include "core/dtype.h"
#include "core/huge_buffer.h"
#include "kv_cache/kv_layout.h"
#include "kv_cache/kv_q8.h"
#include "kv_cache/paged_kv_view.h"

namespace hotswap {

// Every K/V write (Model::forward and KvCacheManager::write_kv) stores a row through this:
// src[head_dim] into the row `offset` storage units past `base` (a layer array), copied for
// float32, each element rounded to nearest even for bf16 (core/dtype.h, as PyTorch),
// quantised for q8 (kv_q8.h).
inline void store_kv_row(KvDtype dtype, const float* src, int head_dim, void* base, size_t offset) {
  const size_t n = static_cast<size_t>(head_dim);
  if (dtype == KvDtype::kQ8) {
    quantize_kv_row_q8(src, head_dim, static_cast<int8_t*>(base) + offset);
  } else if (dtype == KvDtype::kBf16) {
    uint16_t* dst = static_cast<uint16_t*>(base) + offset;
    for (size_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
  } else {
    std::memcpy(static_cast<float*>(base) + offset, src, n * sizeof(float));
  }
}

class KvStorage {
 public:
  explicit KvStorage(const KvLayout& layout);

  const KvLayout& layout() const { return layout_; }
  KvDtype dtype() const { return layout_.dtype; }

  // float32 storage only.
  float* keys(int layer) { return f32(key_data(layer)); }
  float* values(int layer) { return f32(value_data(layer)); }
  const float* keys(int layer) const { return const_cast<KvStorage*>(this)->keys(layer); }
  const float* values(int layer) const { return const_cast<KvStorage*>(this)->values(layer); }
  // Either type: the layer's base address (what a PagedKvView points at).
  const void* key_data(int layer) const { return at(k_, layer); }
  const void* value_data(int layer) const { return at(v_, layer); }
  void* key_data(int layer) { return at(k_, layer); }
  void* value_data(int layer) { return at(v_, layer); }

  // One layer through a block table and (per-KV-head release) its head pages: what the
  // forward pass and KvCacheManager::view hand the attention backends.
  PagedKvView view(int layer, std::span<const int32_t> blocks, std::span<const int32_t> lane_pages = {}) const;

 private:
  using Buffer = HugeBuffer;
  // The zeroed K or V array of all layers, 2 MiB aligned and (on Linux) asked to live in huge pages: decode
  // walks each KV head's rows page by page across the whole array, and with 4 KiB pages
  // nearly every KV page costs a TLB miss.
  static Buffer allocate(size_t bytes);

  float* f32(void* p) {
    HS_CHECK(layout_.dtype == KvDtype::kF32) << "float32 access to a " << kv_dtype_name(layout_.dtype) << " KV cache";
    return static_cast<float*>(p);
  }

  void* at(const Buffer& b, int layer) const {
    return static_cast<unsigned char*>(b.get()) + static_cast<size_t>(layer) * layout_.layer_elems() * kv_dtype_size(layout_.dtype);
  }

  KvLayout layout_;
  Buffer k_, v_;  // [layer, num_blocks, Hkv, block_size, d] of layout_.dtype
};

}  // namespace hotswap
