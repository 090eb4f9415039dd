// Batch-1 decode steps of Model::forward and nothing else, for a profiler (issue 16: the fixed
// costs per token of a small model). engine_throughput_bench interleaves bandwidth passes with
// the steps, which then dominate a `perf record`; this runs only the steps, back to back.
//
//   decode_step_bench [--model DIR | --preset smollm2-135m] [--root /tmp/hotswap-bench]
//                     [--seconds 5] [--context 128] [--matmul-precision auto|f32|bf16]
//                     [--layer-regions auto|per-layer|off]
// Prints the best and median step (ms) and tokens/s. --layer-regions picks how the layers use
// the threads (model/layer_regions.h; off: kernel by kernel), for A/B runs of one binary.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include "roofline.h"
#include "kernels/linear.h"
#include "kv_cache/kv_storage.h"
#include "model/forward_batch.h"
#include "model/layer_regions.h"
#include "model/model.h"
#include "model_gen/random_model.h"

namespace hotswap {
namespace {

volatile float g_sink;

int run(int argc, char** argv) {
  std::string model_dir, preset = "smollm2-135m", root = "/tmp/hotswap-bench", precision = "auto";
  double seconds = 5;
  int context = 128;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") model_dir = v;
    else if (k == "--preset") preset = v;
    else if (k == "--root") root = v;
    else if (k == "--seconds") seconds = std::atof(v.c_str());
    else if (k == "--context") context = std::atoi(v.c_str());
    else if (k == "--matmul-precision") precision = v;
    else if (k == "--layer-regions")
      set_layer_regions(v == "off" ? LayerRegions::kOff : v == "per-layer" ? LayerRegions::kPerLayer : LayerRegions::kAuto);
    else return std::fprintf(stderr, "unknown option %s\n", k.c_str()), 2;
  }
  if (model_dir.empty()) {
    model_dir = root + "/" + preset;
    if (!std::filesystem::exists(model_dir + "/model.safetensors"))
      write_random_model(random_model_preset(preset), model_dir);
  }
  auto model = Model::load(model_dir);
  const MatmulPrecision p = precision == "f32"    ? MatmulPrecision::kF32
                            : precision == "bf16" ? MatmulPrecision::kBf16
                                                  : MatmulPrecision::kAuto;
  kernels::set_linear_precision(linear_precision_for(p, *model));

  constexpr int kBlock = 16, kCycle = 32;  // later steps overwrite the K/V of earlier ones
  const int blocks = (context + kCycle + kBlock) / kBlock;
  KvStorage kv(model->kv_layout(kBlock, blocks));
  std::vector<int32_t> table(blocks);
  std::iota(table.begin(), table.end(), 0);
  Workspace ws;
  int32_t token = 1;
  auto step = [&](int position) {
    ForwardBatch fb;
    SequenceChunk ch;
    ch.tokens = std::span<const int32_t>(&token, 1);
    ch.first_position = position;
    ch.block_table = table;
    ch.logits = LogitsWanted::kLast;
    fb.chunks.push_back(ch);
    const bench::Stopwatch sw;
    const Logits logits = model->forward(fb, kv, ws);
    g_sink = logits.data[0];
    token = (token * 7919 + 13) % model->config().vocab_size;
    return sw.elapsed().wall;
  };
  step(context);  // warm-up: scratch buffers, weight pages
  std::vector<double> times;
  for (double total = 0; total < seconds; total += times.back()) times.push_back(step(context + 1 + times.size() % kCycle));
  std::sort(times.begin(), times.end());
  const double best = times.front() * 1e3, median = times[times.size() / 2] * 1e3;
  std::printf("%s: %zu steps, best %.3f ms, median %.3f ms, %.1f tok/s (best), %.1f tok/s (median)\n",
              model_dir.c_str(), times.size(), best, median, 1e3 / best, 1e3 / median);
  return 0;
}

}  // namespace
}  // namespace hotswap

int main(int argc, char** argv) { return hotswap::run(argc, argv); }
