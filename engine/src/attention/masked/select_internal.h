// Internals of select_keys shared by its translation units (select_keys.cc: pipeline, sink,
// local; select_oracle.cc: oracle top-k / top-p; select_sampling.cc: random and adaptive
// sampling). Not part of the API.
#pragma once

#include <algorithm>
#include <cstdint>

#include "attention/masked/select_keys.h"

namespace hotswap::masked::detail {

// One query head's weights while the maskers run: w[j] in [0, 1] over keys [0, sk), kept
// dense in scratch.w, with the keys that became non-zero listed in scratch.touched.
struct HeadWeights {
  SelectionScratch& s;
  int64_t sk;

  float weight(int64_t j) const { return s.w[j]; }
  bool active(int64_t j) const { return s.w[j] != 0.0f; }
  // Clamp-add merge (Part 2 §2), in float32; r > 0.
  void add(int64_t j, float r) {
    float& x = s.w[j];
    if (x == 0.0f) s.touched.push_back(static_cast<int32_t>(j));
    x = std::min(1.0f, x + r);
  }
};

// A fresh "not yet drawn" marking over scratch.stamp for keys [0, sk): returns the epoch;
// key j was drawn in this sample iff stamp[j] == epoch.
uint32_t new_stamp_epoch(SelectionScratch& s, int64_t sk);

// `count` draws with replacement, uniform over [lo, hi), into scratch.draws.
void draw(const QueryContext& ctx, int head, RngStream stream, int64_t count, int64_t lo, int64_t hi,
          SelectionScratch& s);

// dots: this head's unscaled q.k over keys [0, sk).
void apply_oracle_top_k(const MaskerSpec& m, const float* dots, HeadWeights& hw);
void apply_oracle_top_p(const MaskerSpec& m, const float* dots, float scale, HeadWeights& hw);
void apply_random_sampling(const MaskerSpec& m, const QueryContext& ctx, int head, HeadWeights& hw);
// prev_empty: no masker has written the mask yet (state EMPTY), so D_static sums every key.
void apply_adaptive_sampling(const MaskerSpec& m, const QueryContext& ctx, int head, bool prev_empty,
                             const float* dots, HeadWeights& hw);

// The summarising maskers (select_summarised.cc): `index` is the masker's place in the list,
// q the head's query [d], kv the layer's cache (Quest's partial last page, MagicPig's weights).
struct HeadQuery {
  int head = 0;
  int group = 1;  // query heads per KV head
  const float* q = nullptr;
  const PagedKvView* kv = nullptr;
  // This head's quest page scores of pages [0, num_page_scores) for the masker at
  // page_scores_masker, computed for the whole KV group (quest_page_scores); null when none.
  const float* page_scores = nullptr;
  int64_t num_page_scores = 0;
  size_t page_scores_masker = 0;
};
void apply_hashattention_top_k(const MaskerSpec& m, size_t index, const QueryContext& ctx, const HeadQuery& hq,
                               HeadWeights& hw);
void apply_magic_pig(const MaskerSpec& m, size_t index, const QueryContext& ctx, const HeadQuery& hq, HeadWeights& hw);
void apply_quest_top_k(const MaskerSpec& m, size_t index, const QueryContext& ctx, const HeadQuery& hq,
                       HeadWeights& hw);
// Quest's page scores of every query head for the masker at `index` (label_bits 16), each KV
// group's bounds read once for its query heads: pages [0, n) into scratch.page_scores, [H][n];
// returns n (pages whose stored bounds hold no key beyond the query: all at decode).
// `parallel`: spread the KV groups over the threads.
int64_t quest_page_scores(const MaskerSpec& m, size_t index, const QueryContext& ctx, const float* q, int num_heads,
                          const PagedKvView& kv, bool parallel, SelectionScratch& s);

}  // namespace hotswap::masked::detail
