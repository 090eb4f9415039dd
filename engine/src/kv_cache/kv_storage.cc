#include "kv_cache/kv_storage.h"

#include "core/huge_buffer.h"

namespace hotswap {

KvStorage::Buffer KvStorage::allocate(size_t bytes) {
  return allocate_huge_buffer(bytes);
}

KvStorage::KvStorage(const KvLayout& layout) : layout_(layout) {
  HS_CHECK(kv_dtype_shape_error(layout.dtype, layout.head_dim).empty()) << kv_dtype_shape_error(layout.dtype, layout.head_dim);
  const size_t bytes = layout.layer_elems() * kv_dtype_size(layout.dtype);
  for (int l = 0; l < layout.num_layers; ++l) {
    k_.push_back(allocate(bytes));
    v_.push_back(allocate(bytes));
  }
}

}  // namespace hotswap
