#include "kv_cache/kv_storage.h"

namespace hotswap {

KvStorage::KvStorage(const KvLayout& layout) : layout_(layout) {
  k_.resize(layout.num_layers);
  v_.resize(layout.num_layers);
  for (int l = 0; l < layout.num_layers; ++l) {
    k_[l].assign(layout.layer_elems(), 0.0f);
    v_[l].assign(layout.layer_elems(), 0.0f);
  }
}

}  // namespace hotswap
