// One sequence run directly on a model, outside the engine loop: the CLI's `logits`
// command and the golden tests use it. Owns a private KV cache sized for the sequence.
// Not thread-safe.
#pragma once

#include <memory>
#include <vector>

#include "kv_cache/block_table.h"
#include "kv_cache/kv_cache_manager.h"
#include "attention/attention_backend.h"
#include "model/model.h"

namespace hotswap {

class SequenceSession {
 public:
  SequenceSession(const Model& model, int max_tokens, const SequenceAttention* attention = nullptr,
                  int block_size = 16, KvDtype kv_dtype = KvDtype::kF32);

  // Appends tokens and returns logits for the last one or for all of them ([n, vocab]).
  std::vector<float> append(std::span<const int32_t> tokens, bool all_positions);
  int num_tokens() const { return table_.num_tokens; }

 private:
  const Model& model_;
  const SequenceAttention* attention_;
  KvCacheManager kv_;
  BlockTable table_;
  Workspace workspace_;
  BackendResources resources_;                  // what the backend shares across sequences
  std::unique_ptr<BackendSequenceState> state_;  // the backend's state for this sequence
};

}  // namespace hotswap
