// The model's projections in q8 or q4 (kernels/q8.h), made from the checkpoint at load and
// cached on disk (model/q8_cache.h; one file per format): next to the model when its directory
// is writable, else under the engine's cache directory. The embedding table stays as stored (a
// lookup reads one row).
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
  bool next_to_model = true;  // <model_dir>/hotswap-<format>.cache, read first and written when possible
  std::string cache_dir;      // else <cache_dir>/weights/<hash of the model path>-<format>.cache; "" = none
};

class QuantizedWeights {
 public:
  enum class Source {
    kQuantized,  // quantised from the checkpoint during this load
    kCache,      // mapped from a valid cache file: nothing was quantised
  };

  // Maps a valid cache or quantises (then writes the cache where it can; a cache that cannot be
  // written is logged, not an error). Throws LoadError for a weight the format cannot represent.
  static std::unique_ptr<QuantizedWeights> load(const std::string& model_dir, const ModelWeights& weights,
                                                kernels::QuantFormat format, const WeightCacheOptions& options);
  ~QuantizedWeights();

  std::vector<QuantizedLayer> layers;
  kernels::Q8Matrix lm_head;

  kernels::QuantFormat format() const { return format_; }
  Source source() const { return source_; }
  const std::string& cache_path() const { return cache_path_; }  // read or written; "" if neither
  uint64_t bytes() const { return bytes_; }

 private:
  QuantizedWeights() = default;

  kernels::QuantFormat format_ = kernels::QuantFormat::kQ8;
  Source source_ = Source::kQuantized;
  std::string cache_path_;
  uint64_t bytes_ = 0;
  Q8CacheFile mapped_;
  uint8_t* owned_ = nullptr;  // 64-byte aligned, when quantised here
};

// Where the cache of `model_dir` in `format` is looked for, in order (next to the model, then
// cache_dir); the format is in the file name, so q8 and q4 caches live side by side.
std::vector<std::string> q8_cache_paths(const std::string& model_dir, const WeightCacheOptions& options,
                                        kernels::QuantFormat format = kernels::QuantFormat::kQ8);

}  // namespace hotswap
