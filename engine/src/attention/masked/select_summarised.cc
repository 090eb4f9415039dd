// The maskers that select from per-key summaries (Part 2 §4.6, §5.2, §6) for one query head:
// hashattention_top_k (popcount over packed signatures), magic_pig (code collisions, weights
// from the collision probability) and quest_top_k (page upper bounds).
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "attention/masked/hash_functions.h"
#include "attention/masked/select_internal.h"
#include "core/check.h"

namespace hotswap::masked::detail {

void apply_hashattention_top_k(const MaskerSpec& m, size_t index, const QueryContext& ctx, const HeadQuery& hq,
                               HeadWeights& hw) {
  const int64_t sk = hw.sk;
  const int64_t k = m.size.resolve(sk);  // < sk (not FULL)
  if (k <= 0) return;                    // nothing to add (the reference raises on an empty top-k)
  const KeySummaries& ks = *ctx.summaries;
  const HashAttentionAdapter& hat = ks.hat_adapter();
  HS_CHECK(ks.hat(index, ctx.layer).done >= sk) << "hashattention signatures behind the query";
  SelectionScratch& s = hw.s;
  const uint64_t q_sig =
      hash_signature(hat.layers[static_cast<size_t>(ctx.layer)].query, hat.activation, hq.head, hq.q, s.vec);
  const int bits = hat.bits;

  // Scores are integers in [-bits, bits]; already active keys rank below all of them (the
  // reference's finfo.min). One pass over the head's signature rows, block by block (xor +
  // popcount, vectorised), stores the scores; counting per score then finds the k-th largest
  // in O(sk); ties at the threshold go to the lower positions.
  s.counts.assign(static_cast<size_t>(2 * bits + 1), 0);
  s.scores.resize(static_cast<size_t>(sk));
  int32_t* scores = s.scores.data();
  const int64_t n_block = ks.keys_per_block(index);
  for (int64_t b0 = 0; b0 < sk; b0 += n_block) {
    const int64_t n = std::min(n_block, sk - b0);
    const void* row = ks.hat_block(index, ctx.layer, b0 / n_block, hq.head);
    if (ks.hat_word_bytes() == 4) {
      const auto* w = static_cast<const uint32_t*>(row);
      const uint32_t q = static_cast<uint32_t>(q_sig);
      for (int64_t i = 0; i < n; ++i) scores[b0 + i] = bits - 2 * std::popcount(q ^ w[i]);
    } else {
      const auto* w = static_cast<const uint64_t*>(row);
      for (int64_t i = 0; i < n; ++i) scores[b0 + i] = bits - 2 * std::popcount(q_sig ^ w[i]);
    }
  }
  int64_t inactive = 0;
  for (int64_t j = 0; j < sk; ++j) {
    if (hw.active(j)) continue;
    ++s.counts[static_cast<size_t>(scores[j] + bits)];
    ++inactive;
  }
  if (k >= inactive) {  // every inactive key, then active ones (already 1: no change)
    for (int64_t j = 0; j < sk; ++j)
      if (!hw.active(j)) hw.add(j, 1.0f);
    return;
  }
  int threshold = bits;
  int64_t above = 0;  // keys scoring > threshold
  while (above + s.counts[static_cast<size_t>(threshold + bits)] < k) above += s.counts[static_cast<size_t>(threshold-- + bits)];
  int64_t at_threshold = k - above;  // taken from the lowest positions
  // Mark first, add after: adding while scanning would change active().
  for (int64_t j = 0; j < sk; ++j) {
    const int sc = scores[j];
    const bool take = !hw.active(j) && (sc > threshold || (sc == threshold && at_threshold-- > 0));
    scores[j] = take ? 1 : 0;
  }
  for (int64_t j = 0; j < sk; ++j)
    if (scores[j]) hw.add(j, 1.0f);
}

void apply_magic_pig(const MaskerSpec& m, size_t index, const QueryContext& ctx, const HeadQuery& hq, HeadWeights& hw) {
  const int64_t sk = hw.sk;
  const KeySummaries& ks = *ctx.summaries;
  const KeySummaries::PigLayer& pl = ks.pig(index, ctx.layer);
  HS_CHECK(pl.initialised && pl.done >= sk) << "magic_pig codes behind the query";
  const PagedKvView& kv = *hq.kv;
  const int d = kv.head_dim, g = hq.head / hq.group, tables = m.lsh_l, bits = m.lsh_k;
  SelectionScratch& s = hw.s;
  // q̃ = [qc / (||qc|| + 1e-8), 0] (its codes), and q̃ / (||q̃|| + 1e-8) (its cosine).
  s.vec.resize(3 * static_cast<size_t>(d) + 1);
  float* qt = s.vec.data();           // [d + 1]
  float* q_unit = qt + d + 1;         // [d]
  float* kc = q_unit + d;             // [d]
  s.row.resize(static_cast<size_t>(d));  // a bf16 key widened
  const float* mean = pl.mean.data() + static_cast<size_t>(g) * d;
  for (int c = 0; c < d; ++c) qt[c] = hq.q[c] - mean[c];
  const float qn = lsh_norm(qt, d);
  for (int c = 0; c < d; ++c) qt[c] /= (qn + 1e-8f);
  qt[d] = 0.0f;
  const float qtn = lsh_norm(qt, d);
  for (int c = 0; c < d; ++c) q_unit[c] = qt[c] / (qtn + 1e-8f);
  s.codes.resize(static_cast<size_t>(tables));
  lsh_codes(qt, ks.projection(index, ctx.layer), d + 1, tables, bits, s.codes.data());

  const float max_norm = pl.run_max[static_cast<size_t>(sk - 1)];
  // Collisions: block by block over the KV head's codes ([N][L] consecutive), a key matches
  // when any of its L codes equals the query's code of that table.
  const int64_t n_block = ks.keys_per_block(index);
  const uint64_t* qc = s.codes.data();
  for (int64_t b0 = 0; b0 < sk; b0 += n_block) {
    const int64_t n = std::min(n_block, sk - b0);
    const uint64_t* codes = ks.pig_block(index, ctx.layer, b0 / n_block, g);
    for (int64_t i = 0; i < n; ++i, codes += tables) {
      bool match = false;
      for (int t = 0; t < tables; ++t) match |= codes[t] == qc[t];
      if (!match) continue;
      const int64_t j = b0 + i;
      const float* k = kv.key_row(static_cast<int>(j), g, s.row.data());
      for (int c = 0; c < d; ++c) kc[c] = k[c] - mean[c];
      const float p = lsh_collision_probability(q_unit, kc, d, max_norm, tables, bits);
      if (p > 0.0f) hw.add(j, p);  // clamp-add: sink/local keys stay at 1
    }
  }
}

void apply_quest_top_k(const MaskerSpec& m, size_t index, const QueryContext& ctx, const HeadQuery& hq,
                       HeadWeights& hw) {
  const int64_t sk = hw.sk;
  const int64_t budget = m.size.resolve(sk);  // sk > max(1, budget) (not FULL)
  const int64_t ps = m.page_size;
  const int64_t pages = (sk + ps - 1) / ps;
  const int64_t kp = std::min(pages, std::max<int64_t>(3, budget / ps));
  const KeySummaries& ks = *ctx.summaries;
  const KeySummaries::QuestLayer& ql = ks.quest(index, ctx.layer);
  HS_CHECK(ql.done >= sk) << "quest bounds behind the query";
  const PagedKvView& kv = *hq.kv;
  const int d = kv.head_dim, g = hq.head / hq.group;
  SelectionScratch& s = hw.s;
  s.bounds.resize(static_cast<size_t>(pages) + 2 * static_cast<size_t>(d));
  s.row.resize(static_cast<size_t>(d));  // a bf16 key widened
  float* own = s.bounds.data() + pages;  // [2d]: a page's bounds recomputed or quantised
  const int64_t last = pages - 1;
  for (int64_t p = 0; p < pages; ++p) {
    const float* b = ks.quest_bounds(index, ctx.layer, p, g);
    if (p == last && ql.done > sk) {
      // The cache already folded keys beyond this query into the page: the bounds over the
      // page's keys up to the query (a multi-query chunk; decode never gets here).
      const float* k0 = kv.key_row(static_cast<int>(p * ps), g, s.row.data());
      std::copy(k0, k0 + d, own);
      std::copy(k0, k0 + d, own + d);
      for (int64_t j = p * ps + 1; j < sk; ++j) {
        const float* k = kv.key_row(static_cast<int>(j), g, s.row.data());
        for (int c = 0; c < d; ++c) own[c] = std::min(own[c], k[c]), own[d + c] = std::max(own[d + c], k[c]);
      }
      b = own;
    }
    if (m.label_bits < 16) {
      if (b != own) std::copy(b, b + 2 * d, own);
      pseudo_quantize(own, d, m.label_bits);
      pseudo_quantize(own + d, d, m.label_bits);
      b = own;
    }
    float score = quest_bound(hq.q, b, b + d, d);
    if (std::isnan(score)) score = std::numeric_limits<float>::infinity();  // torch.topk ranks NaN highest
    s.bounds[static_cast<size_t>(p)] = score;
  }
  // The kp best pages, ties to the lower page (previously active keys are not excluded).
  auto& ranked = s.ranked;
  ranked.resize(static_cast<size_t>(pages));
  for (int64_t p = 0; p < pages; ++p) ranked[static_cast<size_t>(p)] = {s.bounds[static_cast<size_t>(p)], static_cast<int32_t>(p)};
  auto better = [](const SelectionScratch::Ranked& a, const SelectionScratch::Ranked& b) {
    return a.score > b.score || (a.score == b.score && a.key < b.key);
  };
  if (kp < pages) std::nth_element(ranked.begin(), ranked.begin() + (kp - 1), ranked.end(), better);
  // Ascending pages add ascending keys (the selection's collect then needs no sort).
  std::sort(ranked.begin(), ranked.begin() + kp, [](const auto& a, const auto& b) { return a.key < b.key; });
  for (int64_t i = 0; i < kp; ++i) {
    const int64_t p = ranked[static_cast<size_t>(i)].key;
    for (int64_t j = p * ps; j < std::min(sk, (p + 1) * ps); ++j) hw.add(j, 1.0f);
  }
}

}  // namespace hotswap::masked::detail
