// Something a backend shares across the sequences of one engine (NSA's compressed-block pool,
// the maskers' summary pool), owned by BackendResources. It reports the memory it holds for
// sequences, which the engine adds to its metrics beside the KV cache.
#pragma once

#include <cstdint>

namespace hotswap {

class BackendResource {
 public:
  virtual ~BackendResource() = default;
  // Bytes held for running sequences now (not the pool's free capacity).
  virtual int64_t bytes_in_use() const = 0;
};

}  // namespace hotswap
