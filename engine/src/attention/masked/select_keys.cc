// The masker pipeline of one query (Part 2 §11), the sink and local maskers, and the scores.
#include "attention/masked/select_keys.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "attention/masked/select_internal.h"
#include "attention/masked/select_kernels.h"

#include "attention/kernel_dispatch.h"

#include "core/check.h"

namespace hotswap::masked {
namespace detail {

uint32_t new_stamp_epoch(SelectionScratch& s, int64_t sk) {
  if (s.stamp.size() < static_cast<size_t>(sk)) s.stamp.resize(static_cast<size_t>(sk), 0);
  if (++s.epoch == 0) {  // wrapped: every stale stamp could now collide
    std::fill(s.stamp.begin(), s.stamp.end(), 0u);
    s.epoch = 1;
  }
  return s.epoch;
}

void draw(const QueryContext& ctx, int head, RngStream stream, int64_t count, int64_t lo, int64_t hi,
          SelectionScratch& s) {
  s.draws.resize(static_cast<size_t>(count));
  if (count == 0) return;
  if (s.draw_override) {
    s.draw_override(head, stream, count, lo, hi, s.draws.data());
    for (int32_t j : s.draws)
      HS_CHECK(j >= lo && j < hi) << "injected draw " << j << " outside [" << lo << ", " << hi << ")";
    return;
  }
  CounterRng(ctx.seed, ctx.layer, head, ctx.position, stream).fill(0, count, lo, hi, s.draws.data());
}

}  // namespace detail

namespace {

// A fixed-order dot product the compiler vectorises (16 independent lanes, then a fixed
// reduction), so a score never depends on where or how often it is computed.
float dot(const float* a, const float* b, int n) {
  std::array<float, 16> acc{};
  int i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) acc[l] += a[i + l] * b[i + l];
  float tail = 0.0f;
  for (; i < n; ++i) tail += a[i] * b[i];
  for (int l = 0; l < 8; ++l) acc[l] += acc[l + 8];
  for (int l = 0; l < 4; ++l) acc[l] += acc[l + 4];
  return (acc[0] + acc[2]) + (acc[1] + acc[3]) + tail;
}

// What a masker does at this sk, decided before any head is looked at (Part 2 §7: every
// FULL rule depends on sk alone).
enum class Effect { kNothing, kWrites, kFull };

Effect effect(const MaskerSpec& m, int64_t sk) {
  switch (m.type) {
    case MaskerType::kSink:
      return sk <= m.size.resolve(sk) ? Effect::kFull : Effect::kWrites;
    case MaskerType::kLocal: {
      const int64_t w = m.size.resolve(sk);
      return w >= sk - 1 ? Effect::kFull : Effect::kWrites;  // sk <= W + sq, sq = 1
    }
    case MaskerType::kCausal:
      return Effect::kNothing;
    case MaskerType::kOracleTopK:
      return sk <= m.size.resolve(sk) ? Effect::kFull : Effect::kWrites;
    case MaskerType::kOracleTopP: {
      const double v = m.top_p * static_cast<double>(sk);  // int(top_p * sk) >= sk
      return static_cast<int64_t>(v) >= sk ? Effect::kFull : Effect::kWrites;
    }
    case MaskerType::kRandomSampling:
      return Effect::kWrites;
    case MaskerType::kAdaptiveSampling:
      if (m.base_rate_sampling.is_zero()) return Effect::kNothing;  // returns the previous mask as is
      return adaptive_range(m, sk).size() < 2 ? Effect::kFull : Effect::kWrites;
    case MaskerType::kHashAttentionTopK:
      return sk <= m.size.resolve(sk) ? Effect::kFull : Effect::kWrites;
    case MaskerType::kMagicPig:
      return Effect::kWrites;
    case MaskerType::kQuestTopK:
      return sk <= std::max<int64_t>(1, m.size.resolve(sk)) ? Effect::kFull : Effect::kWrites;
  }
  return Effect::kNothing;
}

bool needs_scores(const MaskerSpec& m, int64_t sk) {
  if (m.type == MaskerType::kOracleTopK) return m.size.resolve(sk) > 0;  // k == 0 adds nothing
  return m.type == MaskerType::kOracleTopP || m.type == MaskerType::kAdaptiveSampling;
}

void set_all_dense(int num_heads, std::vector<HeadSelection>* out) {
  for (int h = 0; h < num_heads; ++h) {
    HeadSelection& sel = (*out)[h];
    sel.dense = true;
    sel.keys.clear();
    sel.weights.clear();
  }
}

// Sorts touched by merging the ascending runs the maskers appended (sink, local, a top-k's
// keys in order): O(m x runs). False, touched unchanged, when it has more than kMaxRuns runs.
constexpr size_t kMaxRuns = 8;
bool merge_runs(std::vector<int32_t>& touched) {
  thread_local std::vector<size_t> ends;
  thread_local std::vector<int32_t> merged;
  ends.clear();
  for (size_t i = 1; i <= touched.size(); ++i) {
    if (i < touched.size() && touched[i] > touched[i - 1]) continue;
    if (ends.size() == kMaxRuns) return false;
    ends.push_back(i);
  }
  for (size_t r = 1; r < ends.size(); ++r) {
    merged.resize(ends[r]);
    std::merge(touched.begin(), touched.begin() + static_cast<ptrdiff_t>(ends[r - 1]),
               touched.begin() + static_cast<ptrdiff_t>(ends[r - 1]), touched.begin() + static_cast<ptrdiff_t>(ends[r]),
               merged.begin());
    std::copy(merged.begin(), merged.end(), touched.begin());
  }
  return true;
}

// Moves the head's weights into `sel` (ascending keys) and leaves scratch.w all zero again.
void collect(detail::HeadWeights& hw, HeadSelection& sel) {
  SelectionScratch& s = hw.s;
  const size_t m = s.touched.size();
  sel.dense = false;
  const size_t log_m = static_cast<size_t>(std::bit_width(m));
  // Many keys in many runs: one sequential (vectorised) pass over w beats sorting them, which
  // costs a few ns per comparison (measured: 2K keys of 32K sort in ~70 us, the pass ~10 us).
  const bool sorted = merge_runs(s.touched);
  if (!sorted && m * log_m * 8 > static_cast<size_t>(hw.sk)) {
    sel.keys.resize(m + 16);  // the kernel stores whole vectors
    sel.weights.resize(m + 16);
    const int64_t n = detail::select_kernels().gather_nonzero(s.w.data(), hw.sk, sel.keys.data(), sel.weights.data());
    HS_CHECK(n == static_cast<int64_t>(m)) << n << " weights set, " << m << " keys touched";
    sel.keys.resize(m);
    sel.weights.resize(m);
  } else {
    if (!sorted) std::sort(s.touched.begin(), s.touched.end());
    sel.keys.assign(s.touched.begin(), s.touched.end());
    sel.weights.resize(m);
    float* w = s.w.data();
    for (size_t i = 0; i < m; ++i) {
      sel.weights[i] = w[sel.keys[i]];
      w[sel.keys[i]] = 0.0f;
    }
  }
  s.touched.clear();
}

// The maskers of one query head, after the FULL/EMPTY checks; true when it selected nothing.
bool select_head(const MaskedConfig& config, const QueryContext& ctx, const detail::HeadQuery& hq, int64_t sk,
                 const std::vector<float>* all_dots, SelectionScratch& scratch, HeadSelection& out) {
  const int t = ctx.position;
  const int h = hq.head;
  if (scratch.w.size() < static_cast<size_t>(sk)) scratch.w.resize(static_cast<size_t>(sk), 0.0f);
  detail::HeadWeights hw{scratch, sk};
  const float* dots = all_dots ? all_dots->data() + static_cast<size_t>(h) * sk : nullptr;
  bool state_empty = true;
  for (size_t index = 0; index < config.maskers.size(); ++index) {
    const MaskerSpec& m = config.maskers[index];
    if (effect(m, sk) == Effect::kNothing) continue;
    switch (m.type) {
      case MaskerType::kSink: {
        const int64_t s = m.size.resolve(sk);  // < sk (not FULL)
        for (int64_t j = 0; j < s; ++j) hw.add(j, 1.0f);
        break;
      }
      case MaskerType::kLocal: {
        // Keys [t - W + 1, t]; the reference's zeroing of the causal future (j > t) is moot
        // at sq = 1: there is no key beyond t.
        const int64_t w = m.size.resolve(sk);  // <= sk - 2 (not FULL)
        for (int64_t j = t - w + 1; j <= t; ++j) hw.add(j, 1.0f);
        break;
      }
      case MaskerType::kCausal:
        break;
      case MaskerType::kOracleTopK:
        detail::apply_oracle_top_k(m, dots, hw);
        break;
      case MaskerType::kOracleTopP:
        detail::apply_oracle_top_p(m, dots, ctx.scale, hw);
        break;
      case MaskerType::kRandomSampling:
        detail::apply_random_sampling(m, ctx, h, hw);
        break;
      case MaskerType::kAdaptiveSampling:
        detail::apply_adaptive_sampling(m, ctx, h, state_empty, dots, hw);
        break;
      case MaskerType::kHashAttentionTopK:
        detail::apply_hashattention_top_k(m, index, ctx, hq, hw);
        break;
      case MaskerType::kMagicPig:
        detail::apply_magic_pig(m, index, ctx, hq, hw);
        break;
      case MaskerType::kQuestTopK:
        detail::apply_quest_top_k(m, index, ctx, hq, hw);
        break;
    }
    state_empty = false;
  }
  collect(hw, out);
  return out.keys.empty();
}

// Below this many (head, key) pairs a query's heads are not worth a parallel region.
constexpr int64_t kMinParallelWork = 1 << 15;

}  // namespace

bool masker_reached(const MaskedConfig& config, size_t index, int64_t sk) {
  for (size_t i = 0; i < index && i < config.maskers.size(); ++i)
    if (effect(config.maskers[i], sk) == Effect::kFull) return false;
  return true;
}

AdaptiveRange adaptive_range(const MaskerSpec& spec, int64_t sk) {
  const int64_t start = spec.init_offset.resolve(sk);
  const int64_t end = sk - spec.local_offset.resolve(sk);
  return {start, end};
}

int64_t adaptive_base_count(const MaskerSpec& spec, int64_t range) {
  return std::max<int64_t>(2, spec.base_rate_sampling.resolve(range));
}

void select_keys(const MaskedConfig& config, const QueryContext& ctx, const float* q, int num_heads,
                 const PagedKvView& kv, SelectionScratch& scratch, std::vector<HeadSelection>* out) {
  HS_CHECK(num_heads > 0 && kv.num_kv_heads > 0 && num_heads % kv.num_kv_heads == 0)
      << num_heads << " query heads, " << kv.num_kv_heads << " KV heads";
  HS_CHECK(ctx.position >= 0 && ctx.position < kv.num_logical_blocks * kv.block_size)
      << "position " << ctx.position << " outside the cache view";
  out->resize(static_cast<size_t>(num_heads));
  const int64_t sk = static_cast<int64_t>(ctx.position) + 1;
  const int t = ctx.position;

  // Pass 1: FULL anywhere, or no masker that writes (EMPTY), means dense attention.
  bool any_writes = false, scores = false;
  for (const MaskerSpec& m : config.maskers) {
    const Effect e = effect(m, sk);
    if (e == Effect::kFull) return set_all_dense(num_heads, out);
    if (e == Effect::kWrites) {
      any_writes = true;
      scores = scores || needs_scores(m, sk);
    }
  }
  if (!any_writes) return set_all_dense(num_heads, out);

  const int d = kv.head_dim;
  const int group = num_heads / kv.num_kv_heads;
  for (const MaskerSpec& m : config.maskers)
    HS_CHECK(!keeps_key_summaries(m.type) || ctx.summaries != nullptr)
        << masker_type_name(m.type) << " without the sequence's key summaries";
  // One head per work item when this call has the threads to itself (a lone decode query;
  // the backend runs many queries in parallel otherwise).
  const bool parallel = !scratch.draw_override && sk * num_heads >= kMinParallelWork && attention_detail::kernel_threads() > 1;
  // Quest's page scores depend on the query and the bounds only: scored for each KV group's
  // heads together, its bounds read once (the first quest masker without label quantisation).
  size_t quest_index = config.maskers.size();
  int64_t num_page_scores = 0;
  for (size_t i = 0; i < config.maskers.size() && quest_index == config.maskers.size(); ++i)
    if (config.maskers[i].type == MaskerType::kQuestTopK && config.maskers[i].label_bits >= 16) quest_index = i;
  if (quest_index < config.maskers.size())
    num_page_scores = detail::quest_page_scores(config.maskers[quest_index], quest_index, ctx, q, num_heads, kv, parallel, scratch);
  auto head_query = [&](int h) {
    detail::HeadQuery hq{h, group, q + static_cast<size_t>(h) * d, &kv};
    if (quest_index < config.maskers.size()) {
      hq.page_scores = scratch.page_scores.data() + static_cast<size_t>(h) * num_page_scores;
      hq.num_page_scores = num_page_scores;
      hq.page_scores_masker = quest_index;
    }
    return hq;
  };
  if (scores) {
    scratch.dots.resize(static_cast<size_t>(num_heads) * static_cast<size_t>(sk));
    // Every key is read once per KV head; the KV heads' rows of dots are disjoint.
#pragma omp parallel for schedule(static) if (sk * num_heads >= kMinParallelWork && attention_detail::kernel_threads() > 1)
    for (int g = 0; g < kv.num_kv_heads; ++g) {
      thread_local std::vector<float> row;  // a bf16 key widened
      row.resize(static_cast<size_t>(d));
      for (int j = 0; j <= t; ++j) {
        const float* k = kv.key_row(j, g, row.data());
        for (int a = 0; a < group; ++a) {
          const int h = g * group + a;
          scratch.dots[static_cast<size_t>(h) * sk + j] = dot(q + static_cast<size_t>(h) * d, k, d);
        }
      }
    }
  }
  // Heads share only the read-only dots and page scores; each thread has its own weights and
  // buffers. Injected draws (tests) stay on this thread.
  bool any_empty = false;
  if (!parallel) {
    for (int h = 0; h < num_heads; ++h)
      any_empty |= select_head(config, ctx, head_query(h), sk, scores ? &scratch.dots : nullptr, scratch, (*out)[h]);
  } else {
    const std::vector<float>* dots = scores ? &scratch.dots : nullptr;
#pragma omp parallel for schedule(dynamic, 1) reduction(|| : any_empty)
    for (int h = 0; h < num_heads; ++h) {
      thread_local SelectionScratch local;
      any_empty = select_head(config, ctx, head_query(h), sk, dots, local, (*out)[static_cast<size_t>(h)]) || any_empty;
    }
  }
  // Decision (docs/masked-attention.md): a SPARSE mask with a row that selects nothing (only
  // maskers that wrote zero keys: sink/local/top-k sizes that truncate to 0, random sampling
  // with int(rate * sk) == 0, a magic_pig head without a single collision) is NaN in the
  // reference; Hotswap treats that row as EMPTY, i.e. dense. Every masker but magic_pig empties
  // all heads or none.
  if (any_empty)
    for (HeadSelection& sel : *out)
      if (!sel.dense && sel.keys.empty()) sel.dense = true;
}

}  // namespace hotswap::masked
