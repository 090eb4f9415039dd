// The model's projections in q8 (kernels/q8.h), made from the checkpoint at load and cached on
// disk (model/q8_cache.h): next to the model when its directory is writable, else under the
// engine's cache directory. The embedding table stays as stored (a lookup reads one row).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/q8.h"
#include "model/q8_cache.h"
#include "model/weights.h"

namespace hotswap {

struct QuantizedLayer {
  kernels::Q8Matrix q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
};

struct WeightCacheOptions {
  bool next_to_model = true;  // <model_dir>/hotswap-q8.cache, read first and written when possible
  std::string cache_dir;      // else <cache_dir>/weights/<hash of the model path>-q8.cache; "" = none
};

class QuantizedWeights {
 public:
  enum class Source {
    kQuantized,  // quantised from the checkpoint during this load
    kCache,      // mapped from a valid cache file: nothing was quantised
  };

  // Maps a valid cache or quantises (then writes the cache where it can; a cache that cannot be
  // written is logged, not an error). Throws LoadError for a weight q8 cannot represent.
  static std::unique_ptr<QuantizedWeights> load(const std::string& model_dir, const ModelWeights& weights,
                                                const WeightCacheOptions& options);
  ~QuantizedWeights();

  std::vector<QuantizedLayer> layers;
  kernels::Q8Matrix lm_head;

  Source source() const { return source_; }
  const std::string& cache_path() const { return cache_path_; }  // read or written; "" if neither
  uint64_t bytes() const { return bytes_; }

 private:
  QuantizedWeights() = default;

  Source source_ = Source::kQuantized;
  std::string cache_path_;
  uint64_t bytes_ = 0;
  Q8CacheFile mapped_;
  uint8_t* owned_ = nullptr;  // 64-byte aligned, when quantised here
};

// Where the cache of `model_dir` is looked for, in order (next to the model, then cache_dir).
std::vector<std::string> q8_cache_paths(const std::string& model_dir, const WeightCacheOptions& options);

}  // namespace hotswap
