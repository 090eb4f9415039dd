// Per-KV-head release changes only which memory backs the KV cache, never a result: `mixed`
// with gate_threshold decodes through the model's forward pass to bit-identical logits with
// the streaming KV heads' pages given back after every step and with everything kept, for
// each KV dtype, both kernels and two page sizes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "adapters/mixed_adapter_codec.h"
#include "attention/sequence_attention.h"
#include "kv_cache/kv_cache_manager.h"
#include "model/model.h"
#include "model_gen/random_model.h"

namespace hotswap {
namespace {

struct Decoded {
  std::vector<float> logits;  // every prompt position, then each decode step's row
  int64_t peak_blocks = 0;
  int64_t end_blocks = 0;
};

// A 100-token prompt in chunks of 48, then 60 greedy tokens, one per step.
Decoded decode(const Model& model, const SequenceAttention& attention, KvDtype dtype, int kv_block, bool release) {
  const int V = model.config().vocab_size;
  KvCacheManager kv(model.kv_layout(kv_block, 400 / kv_block + 2, dtype));
  BlockTable table;
  Workspace ws;
  std::mt19937 rng(5);
  std::vector<int32_t> tokens(100);
  for (int32_t& t : tokens) t = static_cast<int32_t>(rng() % static_cast<uint32_t>(V));
  Decoded run;
  auto step = [&](int first, int count, LogitsWanted wanted) {
    EXPECT_TRUE(kv.prepare_write(table, first, count).is_ok());
    ForwardBatch batch;
    SequenceChunk chunk;
    chunk.tokens = std::span<const int32_t>(tokens).subspan(static_cast<size_t>(first), static_cast<size_t>(count));
    chunk.first_position = first;
    chunk.block_table = table.blocks;
    chunk.lane_pages = table.lane_pages;
    chunk.attention = &attention;
    chunk.logits = wanted;
    batch.chunks.push_back(chunk);
    const Logits logits = model.forward(batch, kv.storage(), ws);
    run.logits.insert(run.logits.end(), logits.data.begin(), logits.data.end());
    if (release) kv.release_invisible(table, attention.release_rule, attention.kept_lanes, table.num_tokens);
    run.peak_blocks = std::max(run.peak_blocks, kv.num_used_blocks());
    const float* last = logits.row(logits.num_rows() - 1);
    return static_cast<int32_t>(std::max_element(last, last + V) - last);
  };
  int32_t next = 0;
  for (int first = 0; first < 100; first += 48) next = step(first, std::min(48, 100 - first), LogitsWanted::kAll);
  for (int i = 0; i < 60; ++i) {
    tokens.push_back(next);
    next = step(static_cast<int>(tokens.size()) - 1, 1, LogitsWanted::kLast);
  }
  run.end_blocks = kv.num_used_blocks();
  kv.free(table);
  EXPECT_EQ(kv.num_used_blocks(), 0);
  return run;
}

TEST(HeadReleaseParity, MixedWithGateThresholdGivesTheSameLogitsBitForBit) {
  RandomModelSpec spec = random_model_preset("demo");  // 4 layers, 8 query heads on 4 KV heads, d 32
  spec.init_std = 0.1f;
  const std::string dir = ::testing::TempDir() + "/head_release_parity";
  write_random_model(spec, dir);
  const auto model = Model::load(dir);
  const ModelConfig& c = model->config();
  const ModelShape shape{c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim, c.hidden_size, ""};
  // Per layer, KV heads 1 and 2 fall below the threshold: half the KV heads stream.
  std::string doc = "{\"sink_window_size\":4,\"recent_window_size\":16,\"block_size\":4";
  for (int l = 0; l < c.num_layers; ++l)
    doc += ",\"model.layers." + std::to_string(l) + ".self_attn.adapter\":[0.9, 0.2, 0.3, 0.7]";
  doc += "}";
  const auto adapter = parse_mixed_adapter(doc, shape, "half").value();
  AttentionChoice choice;
  std::string error;
  ASSERT_TRUE(parse_attention_choice("{\"impl\":\"mixed\",\"gate_threshold\":0.5}", &choice, &error)) << error;
  SequenceAttention attention = resolve_attention(choice, adapter, shape).value();
  ASSERT_TRUE(attention.release_rule);
  ASSERT_EQ(std::count(attention.kept_lanes.begin(), attention.kept_lanes.end(), 1), c.num_layers * 2);

  for (AttentionKernel kernel : {AttentionKernel::kFast, AttentionKernel::kReference}) {
    attention.kernel = kernel;
    for (KvDtype dtype : {KvDtype::kF32, KvDtype::kBf16, KvDtype::kQ8}) {
      for (int kv_block : {16, 5}) {
        const Decoded kept = decode(*model, attention, dtype, kv_block, /*release=*/false);
        const Decoded released = decode(*model, attention, dtype, kv_block, /*release=*/true);
        const std::string what = std::string(kernel == AttentionKernel::kFast ? "fast" : "reference") + " " +
                                 kv_dtype_name(dtype) + " KV block " + std::to_string(kv_block);
        ASSERT_EQ(released.logits.size(), kept.logits.size()) << what;
        EXPECT_EQ(std::memcmp(released.logits.data(), kept.logits.data(), kept.logits.size() * sizeof(float)), 0)
            << what;
        // And memory was given back: at 160 positions about half of what everything takes.
        EXPECT_LT(released.end_blocks, kept.end_blocks * 7 / 10) << what;
        EXPECT_LE(released.peak_blocks, kept.peak_blocks) << what;
      }
    }
  }
}

}  // namespace
}  // namespace hotswap
