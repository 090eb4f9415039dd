#include "core/huge_buffer.h"

#include <cstring>
#include <new>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace hotswap {

HugeBuffer allocate_huge_buffer(size_t bytes) {
  constexpr size_t kHuge = size_t{2} << 20;
  const size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;  // aligned_alloc wants a multiple
  void* p = std::aligned_alloc(kHuge, rounded > 0 ? rounded : kHuge);
  if (p == nullptr) throw std::bad_alloc();
#ifdef __linux__
  madvise(p, rounded > 0 ? rounded : kHuge, MADV_HUGEPAGE);
#endif
  std::memset(p, 0, bytes);
  return HugeBuffer(p);
}

}  // namespace hotswap
