// Load time of a checkpoint and where it goes: config parse, mapping + header validation,
// then the first forward pass (which pages the weights in from the page cache or disk).
//
//   model_load_bench [--preset llama-3.2-1b] [--dir /tmp/hotswap-bench/llama-3.2-1b]
// Makes the model with the project's own generator if the directory does not exist.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "model/model.h"
#include "model_gen/random_model.h"
#include "runner/sequence_session.h"

using namespace hotswap;
using Clock = std::chrono::steady_clock;

static double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

int main(int argc, char** argv) {
  std::string preset = "llama-3.2-1b", dir;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--preset") preset = argv[i + 1];
    else if (k == "--dir") dir = argv[i + 1];
  }
  if (dir.empty()) dir = "/tmp/hotswap-bench/" + preset;
  if (!std::filesystem::exists(dir + "/model.safetensors")) {
    const auto t = Clock::now();
    write_random_model(random_model_preset(preset), dir);
    std::printf("generated %s in %.0f ms\n", dir.c_str(), ms_since(t));
  }
  auto t0 = Clock::now();
  const ModelConfig config = load_model_config(dir);
  const double config_ms = ms_since(t0);
  t0 = Clock::now();
  auto model = Model::load(dir);
  const double load_ms = ms_since(t0);
  const double gb = static_cast<double>(model->weights().total_bytes()) / 1e9;
  t0 = Clock::now();
  SequenceSession session(*model, 64);
  const int32_t prompt[] = {1, 2, 3, 4};
  session.append(prompt, false);
  const double first_forward_ms = ms_since(t0);
  t0 = Clock::now();
  const int32_t next[] = {5};
  session.append(next, false);
  const double warm_forward_ms = ms_since(t0);
  std::printf("model %s: %.2f GB of weights (%s)\n", dir.c_str(), gb, config.model_type.c_str());
  std::printf("  config.json parse             %8.2f ms\n", config_ms);
  std::printf("  Model::load (mmap + validate) %8.2f ms\n", load_ms);
  std::printf("  first forward (pages weights) %8.2f ms\n", first_forward_ms);
  std::printf("  second forward (warm)         %8.2f ms\n", warm_forward_ms);
  return 0;
}
