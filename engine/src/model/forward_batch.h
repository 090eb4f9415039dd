// What one model step computes: for each sequence, a run of new tokens (a prefill chunk or
// one decode token) at consecutive positions, the block table their K/V go to, the
// attention state that decides which keys they see, and which logits are wanted.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace hotswap {

struct SequenceAttention;
class BackendSequenceState;

enum class LogitsWanted { kNone, kLast, kAll };

struct SequenceChunk {
  std::span<const int32_t> tokens;
  int first_position = 0;
  std::span<const int32_t> block_table;  // must already cover first_position + tokens.size()
  std::span<const int32_t> lane_pages;   // BlockTable::lane_pages (per-KV-head release), read only
  const SequenceAttention* attention = nullptr;  // nullptr = eager
  BackendSequenceState* state = nullptr;         // the backend's per-sequence state, if it keeps one
  LogitsWanted logits = LogitsWanted::kLast;
};

struct ForwardBatch {
  std::vector<SequenceChunk> chunks;
};

// Logits rows in chunk order: kAll gives tokens.size() rows, kLast one, kNone none.
struct Logits {
  int vocab_size = 0;
  std::vector<float> data;       // [num_rows, vocab]
  std::vector<int> first_row;    // per chunk: index of its first row (-1 if none)

  const float* row(int r) const { return data.data() + static_cast<size_t>(r) * vocab_size; }
  int num_rows() const { return vocab_size ? static_cast<int>(data.size() / vocab_size) : 0; }
};

}  // namespace hotswap
