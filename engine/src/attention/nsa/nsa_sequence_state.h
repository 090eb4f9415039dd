// The NSA state of one sequence under one adapter (specs/attention.md `nsa`): per layer, the
// compressed-block cache (compressed keys and values of every KV head, in pages of a
// CompressedBlockPool) and, for compress_rope "pre", the un-rotated keys of the last l
// positions (the only ones a future block can still need; a block is compressed the moment
// it completes, so older un-rotated keys are never read again).
//
// Invariant per layer after nsa_attend() has seen positions [0, P): the cache holds exactly
// num_compressed_blocks(P) = floor((P - l)/s) + 1 entries per KV head (0 while P < l), each
// computed once. Calls must arrive in position order per layer, starting at 0.
//
// Owned by the sequence (one per running sequence that uses `nsa`), destroyed or reset with
// it, which returns every page to the pool. The pool must outlive it. Engine thread only;
// nsa_attend()'s worker threads write the pages it reserved before they start.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "adapters/nsa_adapter.h"
#include "attention/attention_backend.h"
#include "attention/nsa/compressed_block_pool.h"
#include "engine/status.h"

namespace hotswap {

class NsaSequenceState final : public BackendSequenceState {
 public:
  // `pool` must have the adapter's num_kv_heads and head_dim.
  NsaSequenceState(std::shared_ptr<const NsaAdapter> adapter, CompressedBlockPool& pool);
  ~NsaSequenceState() override;
  // Preemption drops the KV; the cache is recomputed from position 0 with it (and the
  // recomputed positions are not counted twice in the density).
  void on_preempted() override {
    reset();
    density_sum_ = 0;
    density_count_ = 0;
  }
  // Positions from `num_prompt_tokens` on are generated: their density is reported.
  void set_prompt_length(int num_prompt_tokens) { num_prompt_tokens_ = num_prompt_tokens; }
  // Layer 0's writes count the generated positions' density (every layer reads alike).
  void on_keys_written(int layer, int first, int count) override;
  // usage.attention_density: over the generated positions, the KV rows a query reads — the
  // selected blocks' keys (n * l'), the window (w) and the compressed entries — over the keys
  // it could see, capped at 1 (selection and window may overlap: an upper bound).
  void add_usage(StreamUsage* usage) const override;
  NsaSequenceState(const NsaSequenceState&) = delete;
  NsaSequenceState& operator=(const NsaSequenceState&) = delete;

  // Makes sure every layer has pages for the entries of `num_positions` positions, so that
  // nsa_attend() up to that length needs no allocation. ResourceExhausted (and nothing held
  // beyond what was) when a capped pool runs out. nsa_attend() also allocates on its own,
  // which is all the engine relies on: its pool is uncapped (nsa_backend.cc) and nothing in
  // the engine calls this; a caller that caps the pool must, before the forward pass.
  Status reserve(int64_t num_positions);
  // The pool bytes reserve(num_positions) takes on a fresh state: what the scheduler charges
  // to the KV cache for an NSA sequence (AttentionBackend::state_bytes).
  static int64_t bytes_for(const NsaAdapter& adapter, const ModelShape& shape, int64_t num_positions,
                           int entries_per_page = CompressedBlockPool::kDefaultEntriesPerPage);

  // Releases every page and forgets every position (preemption, recompute).
  void reset();

  const NsaAdapter& adapter() const { return *adapter_; }
  CompressedBlockPool& pool() const { return *pool_; }
  int num_layers() const { return static_cast<int>(layers_.size()); }
  // Positions of `layer` nsa_attend() has seen, and the compressed entries per KV head.
  int64_t num_positions(int layer) const { return layers_[static_cast<size_t>(layer)].num_positions; }
  int64_t num_compressed(int layer) const { return layers_[static_cast<size_t>(layer)].num_entries; }
  int64_t num_pages() const;  // all layers

  // Copies of the compressed key / value [d] of block j of KV head h in `layer`
  // (j < num_compressed(layer)). For tests and diagnostics.
  std::vector<float> compressed_key(int layer, int64_t j, int kv_head) const;
  std::vector<float> compressed_value(int layer, int64_t j, int kv_head) const;

  // --- for nsa_attend() (attention/nsa/nsa_attention.cc) ---
  struct Layer {
    int64_t num_positions = 0;
    int64_t num_entries = 0;
    std::vector<int32_t> pages;  // page i holds entries [i*E, (i+1)*E)
    // "pre" only: [Hkv, l, d]; position p's un-rotated key at slot p % l.
    std::vector<float> recent_keys;
  };
  Layer& layer(int l) { return layers_[static_cast<size_t>(l)]; }
  // Pages for `num_entries` entries of `layer`; HS_CHECK-fails when a capped pool is full
  // (the scheduler reserves first in that case).
  void ensure_pages(int layer, int64_t num_entries);

 private:
  Status grow(int layer, int64_t num_entries);

  std::shared_ptr<const NsaAdapter> adapter_;
  CompressedBlockPool* pool_;
  int num_prompt_tokens_ = 0;
  double density_sum_ = 0;
  int64_t density_count_ = 0;
  std::vector<Layer> layers_;
};

}  // namespace hotswap
