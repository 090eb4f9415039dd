// Batching must never change results: a sequence's logits are bitwise the same whether it
// runs alone, beside other sequences in one step, or has its prompt prefilled in chunks.
#include <gtest/gtest.h>

#include <array>
#include <numeric>

#include "golden_fixture.h"
#include "kv_cache/block_pool.h"
#include "model/model.h"

namespace hotswap {
namespace {

struct SeqState {
  std::vector<int32_t> tokens;
  std::vector<int32_t> blocks;
};

// Runs `chunks` (sequence index, first token, count) in one step over a shared storage.
Logits step(const Model& model, KvStorage& kv, std::vector<SeqState>& seqs,
            const std::vector<std::array<int, 3>>& chunks, Workspace& ws) {
  ForwardBatch batch;
  for (const auto& [s, first, count] : chunks) {
    SequenceChunk c;
    c.tokens = std::span<const int32_t>(seqs[s].tokens).subspan(first, count);
    c.first_position = first;
    c.block_table = seqs[s].blocks;
    c.logits = LogitsWanted::kAll;
    batch.chunks.push_back(c);
  }
  return model.forward(batch, kv, ws);
}

TEST(BatchInvariance, LogitsDoNotDependOnBatchCompositionOrChunking) {
  auto model = Model::load(testing::golden_dir() + "/models/llama_bf16");
  const int V = model->config().vocab_size, bs = 16, len = 70;
  KvStorage kv(model->kv_layout(bs, 64));
  std::vector<SeqState> seqs(3);
  int next_block = 0;
  for (int s = 0; s < 3; ++s) {
    for (int i = 0; i < len; ++i) seqs[s].tokens.push_back((i * 37 + s * 11 + 5) % V);
    for (int b = 0; b < (len + bs - 1) / bs; ++b) seqs[s].blocks.push_back(next_block++);
  }
  Workspace ws;
  // Sequence 0 alone, whole prompt in one chunk.
  const Logits alone = step(*model, kv, seqs, {{0, 0, len}}, ws);
  // Sequence 0 in chunks of 7, 20 and the rest, each step batched with the others.
  std::vector<float> batched;
  const int cuts[] = {0, 7, 27, len};
  for (int k = 0; k < 3; ++k) {
    const int first = cuts[k], count = cuts[k + 1] - cuts[k];
    const Logits l = step(*model, kv, seqs, {{1, first, count}, {0, first, count}, {2, first, count}}, ws);
    const float* rows = l.row(l.first_row[1]);
    batched.insert(batched.end(), rows, rows + static_cast<size_t>(count) * V);
  }
  ASSERT_EQ(batched.size(), alone.data.size());
  for (size_t i = 0; i < batched.size(); ++i)
    ASSERT_EQ(batched[i], alone.data[i]) << "position " << i / V << " token " << i % V;
}

}  // namespace
}  // namespace hotswap
