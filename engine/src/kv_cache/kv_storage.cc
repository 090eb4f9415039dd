#include "kv_cache/kv_storage.h"

#include <cstring>
#include <new>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace hotswap {

KvStorage::Buffer KvStorage::allocate(size_t bytes) {
  constexpr size_t kHuge = size_t{2} << 20;
  const size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;  // aligned_alloc wants a multiple
  void* p = std::aligned_alloc(kHuge, rounded > 0 ? rounded : kHuge);
  if (p == nullptr) throw std::bad_alloc();
#ifdef __linux__
  madvise(p, rounded, MADV_HUGEPAGE);  // advice only: without THP the pages stay 4 KiB
#endif
  std::memset(p, 0, bytes);
  return Buffer(p);
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
