#include "runner/sequence_session.h"

#include "attention/sequence_attention.h"

#include "core/check.h"
#include "kv_cache/block_table.h"

namespace hotswap {

SequenceSession::SequenceSession(const Model& model, int max_tokens, const SequenceAttention* attention,
                                 int block_size, KvDtype kv_dtype)
    : model_(model),
      attention_(attention),
      kv_(model.kv_layout(block_size, (max_tokens + block_size - 1) / block_size, kv_dtype)),
      resources_(ModelShape{model.config().num_layers, model.config().num_heads, model.config().num_kv_heads,
                            model.config().head_dim, model.config().hidden_size}) {
  if (attention != nullptr && attention->backend != nullptr) {
    // Everything a session is given counts as prompt (the CLI's `logits`: one prompt).
    const SequenceFacts facts{0, max_tokens};
    state_ = attention->backend->new_state(*attention, facts, resources_);
  }
}

std::vector<float> SequenceSession::append(std::span<const int32_t> tokens, bool all_positions) {
  const int first = table_.num_tokens;
  const Status reserved = kv_.prepare_write(table_, first, static_cast<int>(tokens.size()));
  HS_CHECK(reserved.is_ok()) << "SequenceSession capacity exceeded: " << reserved.message();
  ForwardBatch batch;
  SequenceChunk chunk;
  chunk.tokens = tokens;
  chunk.first_position = first;
  chunk.block_table = table_.blocks;
  chunk.attention = attention_;
  chunk.state = state_.get();
  chunk.logits = all_positions ? LogitsWanted::kAll : LogitsWanted::kLast;
  batch.chunks.push_back(chunk);
  Logits logits = model_.forward(batch, kv_.storage(), workspace_);
  return std::move(logits.data);
}

}  // namespace hotswap
