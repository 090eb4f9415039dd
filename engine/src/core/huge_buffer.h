// Large, long-lived buffers that are streamed through (KV arrays, packed weights): 2 MiB
// aligned and advised into transparent huge pages, so a stream of reads does not take a TLB
// miss every 4 KiB.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>

namespace hotswap {

struct HugeBufferFree {
  void operator()(void* p) const { std::free(p); }
};
using HugeBuffer = std::unique_ptr<void, HugeBufferFree>;

// At least `bytes` zeroed bytes; throws std::bad_alloc. The advice is only advice: without
// THP the pages stay 4 KiB.
HugeBuffer allocate_huge_buffer(size_t bytes);

}  // namespace hotswap
