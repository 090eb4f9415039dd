// Per-thread scratch memory for the kernels: 64-byte aligned, grown on demand and kept for
// the thread's lifetime, so steady-state calls do not allocate (or page-fault).
#pragma once

#include <cstddef>

namespace hotswap::kernels::detail {

// Independent buffers per thread; a kernel and the kernels it calls use distinct slots.
enum class ScratchSlot : int { kLinearX, kGemmW, kGemmC, kNumSlots };

// At least `bytes` bytes, 64-byte aligned, owned by the calling thread. The contents are
// unspecified; the pointer stays valid until the next call with the same slot on this thread.
void* thread_scratch(ScratchSlot slot, size_t bytes);

template <typename T>
T* thread_scratch_as(ScratchSlot slot, size_t count) {
  return static_cast<T*>(thread_scratch(slot, count * sizeof(T)));
}

}  // namespace hotswap::kernels::detail
