#include "kernels/cpu/scratch.h"

#include <memory>
#include <new>

namespace hotswap::kernels::detail {
namespace {

struct AlignedFree {
  void operator()(void* p) const { ::operator delete (p, std::align_val_t{64}); }
};

struct Buffer {
  std::unique_ptr<void, AlignedFree> data;
  size_t bytes = 0;
};

}  // namespace

void* thread_scratch(ScratchSlot slot, size_t bytes) {
  thread_local Buffer buffers[static_cast<int>(ScratchSlot::kNumSlots)];
  Buffer& b = buffers[static_cast<int>(slot)];
  if (b.bytes < bytes) {
    // Grow geometrically so a slowly increasing m does not reallocate on every call.
    const size_t grown = bytes + bytes / 2;
    b.data.reset();
    b.data.reset(::operator new (grown, std::align_val_t{64}));
    b.bytes = grown;
  }
  return b.data.get();
}

}  // namespace hotswap::kernels::detail
