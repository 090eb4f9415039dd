// Decode-sized steps run the layers in one parallel region, or two a layer (model/layer_regions.h,
// issue 16). The logits must be bitwise those of the kernel-by-kernel path, at both precisions
// and with f32 and bf16 KV, on a model whose projections are large enough to be split over the
// threads.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "kernels/isa.h"
#include "kernels/linear.h"
#include "model/layer_regions.h"
#include "model/model.h"
#include "model_gen/random_model.h"

namespace hotswap {
namespace {

// Layers large enough that every projection exceeds the kernels' parallel threshold. One folder
// per process: ctest runs each precision as its own process, at the same time, and rewriting
// the safetensors file another process has mapped kills it with SIGBUS.
std::string small_split_model() {
  const std::string dir = (std::filesystem::temp_directory_path() /
                           ("hotswap_layer_regions_model_" + std::to_string(getpid()))).string();
  RandomModelSpec spec = random_model_preset("demo");
  spec.hidden_size = 256;
  spec.intermediate_size = 704;
  spec.num_layers = 3;
  spec.num_heads = 4;
  spec.num_kv_heads = 2;
  spec.head_dim = 64;
  spec.dtype = "BF16";
  spec.init_std = 0.1f;
  write_random_model(spec, dir);
  return dir;
}

// Logits of every step: a 5-token prompt chunk, a 3-token chunk, 4 single-token decodes, then
// chunks of 12 and 16 (the AMX-packed projections' team form goes to 16 rows).
std::vector<float> run_steps(const Model& model, KvDtype kv_dtype) {
  const int bs = 16;
  KvStorage kv(model.kv_layout(bs, 4, kv_dtype));
  std::vector<int32_t> tokens;
  for (int i = 0; i < 40; ++i) tokens.push_back((i * 37 + 5) % model.config().vocab_size);
  const std::vector<int32_t> blocks = {0, 1, 2, 3};
  Workspace ws;
  std::vector<float> all;
  const int cuts[] = {0, 5, 8, 9, 10, 11, 12, 24, 40};
  for (size_t s = 0; s + 1 < std::size(cuts); ++s) {
    ForwardBatch batch;
    SequenceChunk c;
    c.tokens = std::span<const int32_t>(tokens).subspan(cuts[s], cuts[s + 1] - cuts[s]);
    c.first_position = cuts[s];
    c.block_table = blocks;
    c.logits = LogitsWanted::kAll;
    batch.chunks.push_back(c);
    const Logits l = model.forward(batch, kv, ws);
    all.insert(all.end(), l.data.begin(), l.data.end());
  }
  return all;
}

class LayerRegionsTest : public ::testing::TestWithParam<kernels::LinearPrecision> {
 protected:
  void SetUp() override {
    if (GetParam() == kernels::LinearPrecision::kBf16Dot && !kernels::cpu_has_avx512_bf16())
      GTEST_SKIP() << "CPU without AVX512_BF16: kBf16Dot computes exactly as kF32";
    kernels::set_linear_precision(GetParam());
  }
  void TearDown() override {
    kernels::set_linear_precision(kernels::LinearPrecision::kF32);
    set_layer_regions(LayerRegions::kAuto);
  }
};

// kAuto takes the one-region form here (short contexts), kPerLayer the two-region one.
TEST_P(LayerRegionsTest, LogitsBitwiseEqualToKernelByKernel) {
  const std::string dir = small_split_model();
  auto model = Model::load(dir);
  std::filesystem::remove_all(dir);  // the mapping outlives the name
  for (KvDtype kv_dtype : {KvDtype::kF32, KvDtype::kBf16}) {
    set_layer_regions(LayerRegions::kOff);
    const std::vector<float> expected = run_steps(*model, kv_dtype);
    for (LayerRegions mode : {LayerRegions::kAuto, LayerRegions::kPerLayer}) {
      set_layer_regions(mode);
      const std::vector<float> got = run_steps(*model, kv_dtype);
      ASSERT_EQ(got.size(), expected.size());
      EXPECT_EQ(std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)), 0)
          << "KV " << (kv_dtype == KvDtype::kF32 ? "f32" : "bf16")
          << (mode == LayerRegions::kAuto ? ", one region" : ", two regions a layer");
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Precisions, LayerRegionsTest,
                         ::testing::Values(kernels::LinearPrecision::kF32, kernels::LinearPrecision::kBf16Dot));

}  // namespace
}  // namespace hotswap
