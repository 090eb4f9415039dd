// Key selection for the `masked` attention implementation (specs/maskers.md Part 1, Part 2
// §1-5, §7, §11): for one query at position t of one layer, run the configured maskers in
// order over the keys 0..t and return, per query head, the selected keys and their weights
// w in (0, 1] (or "dense" when the final mask is FULL or EMPTY).
//
// Every query is its own decode step (sq = 1, sk = t + 1). Pipeline per query (Part 2 §11):
// state EMPTY; maskers in list order; a FULL result makes every later masker a no-op and the
// result dense; otherwise weights merge by clamp-add in float32 (w = min(1, w + r)); a masker
// that runs (every one but causal and adaptive with base_rate_sampling 0) makes the state
// SPARSE even if it writes nothing. FULL/EMPTY depend only on sk, so all heads are dense or
// none. Pure given its inputs; thread-safe with one SelectionScratch per thread.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "attention/masked/counter_rng.h"
#include "attention/masked/key_summaries.h"
#include "attention/masked/masker_config.h"
#include "kv_cache/paged_kv_view.h"

namespace hotswap::masked {

struct QueryContext {
  int layer = 0;
  int position = 0;    // t: this query sees keys 0..t (sk = t + 1, sq = 1)
  uint64_t seed = 0;   // request seed for the sampling maskers
  float scale = 1.0f;  // softmax scaling (1/sqrt(d))
  // The sequence's key summaries (hashattention_top_k, magic_pig, quest_top_k): required when
  // the list has one of those, brought up to `position` (write_keys / prepare_queries).
  const KeySummaries* summaries = nullptr;
};

struct HeadSelection {
  bool dense = false;          // final mask FULL or EMPTY: dense causal attention over 0..t
  std::vector<int32_t> keys;   // ascending, unique, each in [0, t]; only when !dense
  std::vector<float> weights;  // w in (0, 1], same length as keys (float32)
};

// Reusable buffers of select_keys (grow-only; nothing is allocated once they have grown to the
// largest sk seen). One per thread.
struct SelectionScratch {
  std::vector<float> dots;       // [num_heads][sk]: q_h . k_j, unscaled, when a masker needs scores
  std::vector<float> w;          // [sk] the current head's weights; zero outside `touched` between uses
  std::vector<int32_t> touched;  // keys whose w is > 0, in the order they were first set
  std::vector<float> e;          // [sk] exp(score - rowmax) of top-p / adaptive
  std::vector<float> sorted;     // top-p's partially sorted e
  struct Ranked {
    float score;
    int32_t key;
  };
  std::vector<Ranked> ranked;   // top-k candidates
  std::vector<int32_t> draws;   // sampled indices (with replacement)
  std::vector<uint8_t> distance;    // hashattention's Hamming distance per key (kSkipKey: active)
  std::vector<float> bounds;        // quest's page scores; then a page's bounds when recomputed
  std::vector<float> page_scores;   // [num_heads][pages] quest's bounds scored per KV group at once
  std::vector<uint32_t> order;      // quest's page scores as order-preserving integers
  std::vector<int32_t> pages;       // quest's chosen pages, ascending
  std::vector<float> vec;       // per-head vectors of the summarising maskers (hash MLP, centred q)
  std::vector<uint64_t> codes;  // magic_pig's query codes
  std::vector<int32_t> collisions;  // magic_pig's colliding keys, ascending
  std::vector<float> row;       // one bf16 key row widened to float32 (PagedKvView::key_row)
  std::vector<int32_t> dedupe;  // adaptive_budget's distinct base-sample keys
  std::vector<uint32_t> stamp;  // [sk] stamp[j] == epoch: key j already drawn in this sample
  uint32_t epoch = 0;

  // Test hook (specs/maskers.md §11: inject the drawn indices): when set, sampling draws come
  // from here instead of the counter-based generator. Called with the query head, the stream,
  // and the count and [lo, hi) of the draws to write into out.
  std::function<void(int head, RngStream stream, int64_t count, int64_t lo, int64_t hi, int32_t* out)>
      draw_override;
};

// q: [num_heads, head_dim], the RoPE-applied query at position ctx.position of one layer; kv:
// that layer's cache holding keys 0..t. Query head h uses KV head h / (num_heads / kv.num_kv_heads).
// Fills (*out)[h] for every query head (out is resized to num_heads).
void select_keys(const MaskedConfig& config, const QueryContext& ctx, const float* q, int num_heads,
                 const PagedKvView& kv, SelectionScratch& scratch, std::vector<HeadSelection>* out);

// True when no masker before maskers[index] returns FULL at sk: that masker runs (and
// initialises its caches) for a query with sk keys (Part 2 §7).
bool masker_reached(const MaskedConfig& config, size_t index, int64_t sk);

// ---- pieces exposed for tests and reference fixtures ----

// Adaptive sampling's range for sk keys (Part 2 §5.3 step 2): start = init_offset (int) or
// int(init_offset * sk); end = sk - local_offset (int) or sk - int(local_offset * sk).
struct AdaptiveRange {
  int64_t start, end;
  int64_t size() const { return end - start; }
};
AdaptiveRange adaptive_range(const MaskerSpec& spec, int64_t sk);
// nb = max(2, base_rate_sampling) (int) or max(2, int(base_rate_sampling * R)) (float).
int64_t adaptive_base_count(const MaskerSpec& spec, int64_t range);

// The budget of Part 2 §5.3 steps 5-8 from injected values, in the reference's float32
// arithmetic: e = exp(scaled score - rowmax) over keys [0, sk); d_static = the previous mask's
// inverse-weighted sum of e (Σ e over all keys when it is EMPTY); base_sample = the nb base
// draws in [start, end) (duplicates count for sigma, once for D_sampled).
// probability = budget / R as float32, the weight the mask stores.
struct AdaptiveBudget {
  int64_t budget;
  double probability;
};
AdaptiveBudget adaptive_budget(const MaskerSpec& spec, std::span<const float> e, double d_static,
                               int64_t start, int64_t end, std::span<const int32_t> base_sample);

}  // namespace hotswap::masked
