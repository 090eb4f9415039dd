// The maskers that select from per-key summaries (Part 2 §4.6, §5.2, §6) for one query head:
// hashattention_top_k (popcount over packed signatures), magic_pig (code collisions, weights
// from the collision probability) and quest_top_k (page upper bounds).
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "attention/masked/hash_functions.h"
#include "attention/masked/select_kernels.h"
#include "attention/masked/select_internal.h"
#include "core/check.h"
#include "core/touch_lines.h"

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
  const SelectKernels& kern = select_kernels();

  // Score = bits - 2 * Hamming distance, so the k highest scores are the k smallest distances.
  // One pass over the head's signature rows, block by block, stores the distances as bytes.
  s.distance.resize(static_cast<size_t>(sk));
  uint8_t* dist = s.distance.data();
  const int64_t n_block = ks.keys_per_block(index);
  const size_t row_bytes = static_cast<size_t>(n_block) * static_cast<size_t>(ks.hat_word_bytes());
  for (int64_t b0 = 0; b0 < sk; b0 += n_block) {
    const int64_t n = std::min(n_block, sk - b0);
    const void* row = ks.hat_block(index, ctx.layer, b0 / n_block, hq.head);
    if (b0 + n_block < sk) {  // the next block's row is a record away: start reading it now
      const auto* next = static_cast<const char*>(ks.hat_block(index, ctx.layer, b0 / n_block + 1, hq.head));
      for (size_t line = 0; line < row_bytes; line += 64) __builtin_prefetch(next + line);
    }
    if (ks.hat_word_bytes() == 4)
      kern.hamming32(static_cast<uint32_t>(q_sig), static_cast<const uint32_t*>(row), n, dist + b0);
    else
      kern.hamming64(q_sig, static_cast<const uint64_t*>(row), n, dist + b0);
  }
  // Already active keys rank below all of them (the reference's finfo.min): skipped.
  for (int32_t j : s.touched) dist[j] = kSkipKey;
  const int64_t inactive = sk - static_cast<int64_t>(s.touched.size());
  int threshold = kSkipKey;  // every inactive key, then active ones (already 1: no change)
  int64_t ties = 0, take = inactive;
  if (k < inactive) {
    // The smallest distance t with at least k keys at or below it (binary search over
    // [0, bits], a vector count per probe); ties at t go to the lowest positions.
    int lo = 0, hi = bits;  // every inactive key is <= bits, and k < inactive
    int64_t below_lo = 0;   // keys < lo
    while (lo < hi) {
      const int mid = (lo + hi) / 2;
      const int64_t at_most = kern.count_at_most(dist, sk, mid);
      if (at_most >= k) {
        hi = mid;
      } else {
        lo = mid + 1;
        below_lo = at_most;
      }
    }
    threshold = lo;
    ties = k - below_lo;
    take = k;
  }
  const size_t before = s.touched.size();
  s.touched.resize(before + static_cast<size_t>(take) + 16);  // the kernel stores whole vectors
  const int64_t taken = kern.take_below(dist, sk, threshold, ties, s.w.data(), s.touched.data() + before);
  HS_CHECK(taken == take) << "hashattention took " << taken << " keys of " << take;
  s.touched.resize(before + static_cast<size_t>(take));
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
  const SelectKernels& kern = select_kernels();
  const int64_t n_block = ks.keys_per_block(index);
  s.collisions.resize(static_cast<size_t>(sk) + 16);
  int64_t matches = 0;
  for (int64_t b0 = 0; b0 < sk; b0 += n_block) {
    const int64_t n = std::min(n_block, sk - b0);
    matches += kern.pig_collisions(ks.pig_block(index, ctx.layer, b0 / n_block, g), pig_code_bytes_for(bits), n,
                                   tables, s.codes.data(), static_cast<int32_t>(b0), s.collisions.data() + matches);
  }
  // The colliding keys' weights need their rows: scattered reads, so each run of them is
  // first touched in a loop of loads only (all in flight at once), then weighed from L1.
  const size_t row_bytes = kv_row_units(kv.dtype, d) * kv_dtype_size(kv.dtype);
  const char* k_base = static_cast<const char*>(kv.k);
  constexpr int64_t kRun = 64;
  for (int64_t r0 = 0; r0 < matches; r0 += kRun) {
    const int64_t r1 = std::min(matches, r0 + kRun);
    uint64_t touched = 0;
    for (int64_t i = r0; i < r1; ++i)
      touched += touch_lines(k_base + kv.offset(s.collisions[static_cast<size_t>(i)], g) * kv_dtype_size(kv.dtype),
                             row_bytes);
    keep_touched(touched);
    float p[kRun];
    for (int64_t i = r0; i < r1; ++i) {
      const float* k = kv.key_row(s.collisions[static_cast<size_t>(i)], g, s.row.data());
      for (int c = 0; c < d; ++c) kc[c] = k[c] - mean[c];
      p[i - r0] = lsh_cosine(q_unit, kc, d, max_norm);
    }
    lsh_probabilities(p, static_cast<int>(r1 - r0), tables, bits);
    for (int64_t i = r0; i < r1; ++i)
      if (p[i - r0] > 0.0f) hw.add(s.collisions[static_cast<size_t>(i)], p[i - r0]);  // clamp-add: sink/local keys stay at 1
  }
}

namespace {

// A float32 score as an unsigned integer of the same order (NaN was made +inf before): -0 and
// +0, which compare equal, share one.
uint32_t order_key(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f == 0.0f ? 0.0f : f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// The k highest of key[0, n) (0 < k <= n < 2^31), ties to the lower index, ascending, into `out`:
// the k-th highest value is built bit by bit below the keys' common leading bits (a counting
// pass per bit, no sort).
void top_k_ascending(const uint32_t* key, int64_t n, int64_t k, std::vector<int32_t>* out) {
  // The k-th highest lies in [min, max]: it shares their common leading bits.
  uint32_t lo = key[0], hi = key[0];
  for (int64_t i = 1; i < n; ++i) lo = std::min(lo, key[i]), hi = std::max(hi, key[i]);
  const int differ = std::bit_width(lo ^ hi);  // bits below the common prefix
  uint32_t kth = differ == 32 ? 0 : lo & ~((uint32_t{1} << differ) - 1);
  for (int b = differ - 1; b >= 0; --b) {
    const uint32_t probe = kth | (uint32_t{1} << b);
    int32_t at_least = 0;  // 32-bit lanes: the count vectorises 16 keys at a time
    for (int64_t i = 0; i < n; ++i) at_least += key[i] >= probe ? 1 : 0;
    if (at_least >= k) kth = probe;
  }
  int32_t above = 0;
  for (int64_t i = 0; i < n; ++i) above += key[i] > kth ? 1 : 0;
  int64_t ties = k - above;
  out->resize(static_cast<size_t>(k) + 1);  // + 1: the store after the last taken one
  int32_t* o = out->data();
  for (int64_t i = 0; i < n; ++i) {  // branch-free: the taken pages are unpredictable
    const bool tie = key[i] == kth && ties > 0;
    *o = static_cast<int32_t>(i);
    o += (key[i] > kth) | tie;
    ties -= tie;
  }
  out->resize(static_cast<size_t>(k));
}

}  // namespace

int64_t quest_page_scores(const MaskerSpec& m, size_t index, const QueryContext& ctx, const float* q, int num_heads,
                          const PagedKvView& kv, bool parallel, SelectionScratch& s) {
  const int64_t sk = static_cast<int64_t>(ctx.position) + 1;
  const int64_t ps = m.page_size;
  const int64_t pages = (sk + ps - 1) / ps;
  const KeySummaries& ks = *ctx.summaries;
  const KeySummaries::QuestLayer& ql = ks.quest(index, ctx.layer);
  HS_CHECK(ql.done >= sk) << "quest bounds behind the query";
  // A last page that already holds keys beyond the query (a multi-query chunk) is rescored
  // per head from its keys (apply_quest_top_k).
  const int64_t n = ql.done > sk ? pages - 1 : pages;
  s.page_scores.resize(static_cast<size_t>(num_heads) * static_cast<size_t>(n));
  const SelectKernels& kern = select_kernels();
  const int64_t run = ql.pages.records_per_page();  // consecutive records in memory
  const size_t stride = ql.pages.record_bytes() / sizeof(float);
  const int64_t runs = (n + run - 1) / run;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t r = 0; r < runs; ++r) {
    const int64_t p0 = r * run;
    kern.quest_scores(ks.quest_bounds(index, ctx.layer, p0, 0), stride, std::min(run, n - p0), q, kv.num_kv_heads,
                      num_heads / kv.num_kv_heads, kv.head_dim, s.page_scores.data() + p0, static_cast<size_t>(n));
  }
  return n;
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
  int64_t from = 0;  // pages scored already for the whole group
  if (hq.page_scores != nullptr && hq.page_scores_masker == index) {
    from = hq.num_page_scores;
    std::copy(hq.page_scores, hq.page_scores + from, s.bounds.data());
  }
  for (int64_t p = from; p < pages; ++p) {
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
    s.bounds[static_cast<size_t>(p)] = quest_bound(hq.q, b, b + d, d);
  }
  // The kp best pages, ties to the lower page (previously active keys are not excluded);
  // torch.topk ranks NaN highest.
  s.order.resize(static_cast<size_t>(pages));
  for (int64_t p = 0; p < pages; ++p) {
    const float score = s.bounds[static_cast<size_t>(p)];
    s.order[static_cast<size_t>(p)] = order_key(std::isnan(score) ? std::numeric_limits<float>::infinity() : score);
  }
  top_k_ascending(s.order.data(), pages, kp, &s.pages);
  // Ascending pages add ascending keys (the selection's collect then needs no sort). Weight
  // 1: min(1, w + 1) is 1 whatever w was; keys at 0 join touched (branch-free).
  const size_t before = s.touched.size();
  s.touched.resize(before + static_cast<size_t>(kp * ps));
  int32_t* out = s.touched.data() + before;
  float* w = s.w.data();
  for (const int32_t p : s.pages) {
    for (int64_t j = p * ps; j < std::min(sk, (p + 1) * ps); ++j) {
      *out = static_cast<int32_t>(j);
      out += w[j] == 0.0f;
      w[j] = 1.0f;
    }
  }
  s.touched.resize(static_cast<size_t>(out - s.touched.data()));
}

}  // namespace hotswap::masked::detail
