// Benchmark-sized models: the project's deterministic random checkpoints (tools/model_gen/random_model.h),
// written under a cache directory the first time a benchmark needs one, so later runs only
// map them (a Llama-3.2-1B-shaped checkpoint is 2.5 GB and takes a while to write).
#pragma once

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "model_gen/random_model.h"

namespace hotswap::bench {

// `root`/`preset`, generated from random_model_preset(preset) when it has no weights yet.
inline std::string ensure_random_model(const std::string& root, const std::string& preset) {
  const std::string dir = root + "/" + preset;
  if (!std::filesystem::exists(dir + "/model.safetensors")) {
    const auto t0 = std::chrono::steady_clock::now();
    write_random_model(random_model_preset(preset), dir);
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - t0;
    std::printf("generated %s in %.1f s\n", dir.c_str(), took.count());
  }
  return dir;
}

}  // namespace hotswap::bench
