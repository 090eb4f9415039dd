#include "kv_cache/kv_storage.h"

namespace hotswap {

KvStorage::KvStorage(const KvLayout& layout) : layout_(layout) {
  const bool bf16 = layout.dtype == KvDtype::kBf16;
  if (bf16) {
    k16_.resize(layout.num_layers);
    v16_.resize(layout.num_layers);
  } else {
    k_.resize(layout.num_layers);
    v_.resize(layout.num_layers);
  }
  for (int l = 0; l < layout.num_layers; ++l) {
    if (bf16) {
      k16_[l].assign(layout.layer_elems(), 0);
      v16_[l].assign(layout.layer_elems(), 0);
    } else {
      k_[l].assign(layout.layer_elems(), 0.0f);
      v_[l].assign(layout.layer_elems(), 0.0f);
    }
  }
}

const void* KvStorage::key_data(int layer) const {
  const size_t l = static_cast<size_t>(layer);
  return layout_.dtype == KvDtype::kBf16 ? static_cast<const void*>(k16_[l].data()) : k_[l].data();
}

const void* KvStorage::value_data(int layer) const {
  const size_t l = static_cast<size_t>(layer);
  return layout_.dtype == KvDtype::kBf16 ? static_cast<const void*>(v16_[l].data()) : v_[l].data();
}

}  // namespace hotswap
