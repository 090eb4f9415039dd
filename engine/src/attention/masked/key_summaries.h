// One sequence's summaries of its keys for the maskers that keep them (specs/maskers.md Part 1
// "State kept per sequence"): per layer and per such masker of the list,
//   hashattention_top_k  the key signature of every (key, query head), `bits` bits packed;
//   magic_pig            the key mean (frozen at the layer's first query where the masker runs),
//                        the running max norm M of the centred keys, and L codes per (key, KV
//                        head), each computed once with the M current when the key was hashed;
//   quest_top_k          per page of `page_size` keys and KV head, the element-wise min and max.
// Each key is summarised once: when it is written (signatures, bounds) or, for MagicPig, at the
// first sparse query for the backlog. Storage is paged in the engine's SummaryPool and returned
// with the sequence (destruction or reset()).
//
// Engine thread for write_keys/prepare_queries/reset (they may fork OpenMP threads); the
// views are read by select_keys on any thread while no write runs.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "adapters/hashattention_adapter.h"
#include "adapters/lsh_adapter.h"
#include "attention/masked/masker_config.h"
#include "attention/masked/summary_pool.h"
#include "kv_cache/paged_kv_view.h"

namespace hotswap::masked {

struct SummaryShape {
  int num_layers = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0;
};

// One summarising masker's array per layer: records of `record_bytes` (SummaryArray), each
// covering `keys_per_record` consecutive keys.
struct SummaryArrayLayout {
  size_t record_bytes = 0;
  int keys_per_record = 1;
};
// The layout of masker `spec`'s arrays (nullopt: the masker keeps no summaries); `hat_bits` is
// the hashattention adapter's signature width (hashattention_top_k only).
// Bytes of one stored MagicPig code of `bits` bits (lsh_k): 1, 2, 4 or 8, the narrowest
// unsigned word that holds it.
inline int pig_code_bytes_for(int bits) { return bits <= 8 ? 1 : bits <= 16 ? 2 : bits <= 32 ? 4 : 8; }

std::optional<SummaryArrayLayout> summary_array_layout(const MaskerSpec& spec, const SummaryShape& shape, int hat_bits);
// Pool bytes (whole pages) the summaries of `config`'s maskers hold for keys [0, num_keys),
// at most: what KeySummaries reserves once every key up to num_keys is summarised.
int64_t summary_bytes(const MaskedConfig& config, const SummaryShape& shape, int hat_bits, int64_t num_keys);

class KeySummaries {
 public:
  // `hat` is required when the list has hashattention_top_k; `lsh` (optional) replaces the
  // seeded projections of magic_pig. Both were checked against the model by resolve().
  KeySummaries(const MaskedConfig& config, const SummaryShape& shape, SummaryPool& pool,
               std::shared_ptr<const HashAttentionAdapter> hat, std::shared_ptr<const LshAdapter> lsh);

  // Forgets every key and returns every page (preemption: the KV is recomputed from 0).
  void reset();

  // Keys [0, end) of `layer` are in the cache: signatures and page bounds for the new ones.
  void write_keys(int layer, const PagedKvView& kv, int end);
  // Before sparse queries at positions first..last of `layer`: MagicPig's backlog and codes up
  // to `last`. runs(sk): no masker before magic_pig is FULL at sk (where it initialises).
  void prepare_queries(int layer, const PagedKvView& kv, int first, int last,
                       const std::function<bool(size_t masker, int64_t sk)>& runs);

  int64_t num_pages() const;

  // ---- views for select_keys (masker = index in the config's list) ----
  struct HatLayer {
    SummaryArray blocks;  // per block of keys_per_block keys: [H][N] words
    int64_t done = 0;     // keys [0, done) signed
  };
  struct PigLayer {
    bool initialised = false;
    int first_query = -1;        // the position where the mean was frozen
    std::vector<float> mean;     // [Hkv, d]; zeros when center is false
    std::vector<float> run_max;  // per position: M over keys 0..max(j, first query) (centred)
    SummaryArray blocks;         // per block of keys_per_block keys: [Hkv][N][L] codes
    int64_t done = 0;
  };
  struct QuestLayer {
    SummaryArray pages;  // per Quest page: [Hkv][2][d] (min, then max)
    int64_t done = 0;    // keys [0, done) folded into their page's bounds
  };

  int keys_per_block(size_t masker) const { return per_masker_[masker].keys_per_block; }
  int hat_word_bytes() const { return hat_word_bytes_; }
  const HashAttentionAdapter& hat_adapter() const { return *hat_; }
  const HatLayer& hat(size_t masker, int layer) const { return per_masker_[masker].hat[static_cast<size_t>(layer)]; }
  const PigLayer& pig(size_t masker, int layer) const { return per_masker_[masker].pig[static_cast<size_t>(layer)]; }
  const QuestLayer& quest(size_t masker, int layer) const {
    return per_masker_[masker].quest[static_cast<size_t>(layer)];
  }
  // MagicPig's projection of `layer`: [d + 1, L*K].
  const float* projection(size_t masker, int layer) const;

  // The signature word of key j, query head h.
  uint64_t hat_signature(size_t masker, int layer, int64_t j, int h) const;
  // Head h's signatures of keys [block * N, block * N + N) (N = keys_per_block), consecutive:
  // uint32_t words when hat_word_bytes() == 4, else uint64_t. For scans.
  const void* hat_block(size_t masker, int layer, int64_t block, int h) const;
  // KV head g's codes of keys [block * N, block * N + N): [N][L] consecutive, each
  // pig_code_bytes_for(lsh_k) bytes. For scans.
  const void* pig_block(size_t masker, int layer, int64_t block, int g) const;
  // Code t of key j, KV head g.
  uint64_t pig_code(size_t masker, int layer, int64_t j, int g, int t) const;
  // Page p's min (then max, d further) for KV head g.
  const float* quest_bounds(size_t masker, int layer, int64_t p, int g) const;

 private:
  struct PerMasker {
    MaskerSpec spec;
    int keys_per_block = 1;
    std::vector<HatLayer> hat;
    std::vector<PigLayer> pig;
    std::vector<QuestLayer> quest;
    std::vector<std::vector<float>> projections;  // per layer, when drawn from the seed
  };
  void write_hat(PerMasker& m, int layer, const PagedKvView& kv, int end);
  void write_quest(PerMasker& m, int layer, const PagedKvView& kv, int end);
  void prepare_pig(size_t index, int layer, const PagedKvView& kv, int first, int last,
                   const std::function<bool(size_t, int64_t)>& runs);

  SummaryShape shape_;
  SummaryPool* pool_;
  std::shared_ptr<const HashAttentionAdapter> hat_;
  std::shared_ptr<const LshAdapter> lsh_;
  int hat_word_bytes_ = 8;
  std::vector<PerMasker> per_masker_;  // indexed like the config's list; empty entries for others
};

}  // namespace hotswap::masked
