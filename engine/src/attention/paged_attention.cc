// Dispatcher of the paged attention kernel: turns calls into work items (which keys each
// query walks, which branches each head needs), runs them in parallel with the kernel of the
// active ISA, merges context splits and writes each head's output.
#include "attention/paged_attention.h"

#include "attention/nsa/nsa_attention.h"
#include "core/check.h"

#include <algorithm>
#include <cmath>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "attention/paged_attention_kernel.h"
#include "attention/sequence_attention.h"
#include "core/check.h"
#include "kernels/isa.h"

namespace hotswap {
namespace attention_detail {

void released_page_read(int position) {
  HS_CHECK(false) << "attention read position " << position << " from a released KV page";
  __builtin_unreachable();
}

}  // namespace attention_detail

using namespace attention_detail;

namespace {

// Below this many keys per split a context split costs more in merging than it gains.
constexpr int kMinKeysPerSplit = 512;

struct WorkItem {
  int call = 0;
  int token = 0;
  int kv_head = 0;
  int num_splits = 1;
  int first_segment = 0;
  int num_segments = 0;
  size_t flags = 0;  // need_dense at flags, need_window at flags + group
  size_t state = 0;  // offset of this split's state in split_states (num_splits > 1)
};

ItemKernel active_kernel() {
  switch (kernels::active_isa()) {
    case kernels::Isa::kAvx512: return avx512_item_kernel();
    case kernels::Isa::kAvx2: return avx2_item_kernel();
    case kernels::Isa::kScalar: break;
  }
  return scalar_item_kernel();
}

int num_threads() {
#ifdef _OPENMP
  return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
  return 1;
#endif
}

AttentionImpl impl_of(const LayerAttentionCall& c) { return c.seq == nullptr ? AttentionImpl::kEager : c.seq->impl; }

// The key runs a query at t walks: all of [0, t] when some head needs the dense branch
// (cut where the streaming window starts and stops), else only the window.
void append_segments(const StreamingRule& rule, int t, bool any_dense, bool any_window, std::vector<Segment>* out) {
  auto add = [out](int begin, int end, bool in_window) {
    if (begin < end) out->push_back(Segment{begin, end, in_window});
  };
  if (!any_window) {
    add(0, t + 1, false);
    return;
  }
  const int sink_end = std::min(rule.sink_end, t + 1);
  const int local_begin = std::max(rule.local_start(t), rule.sink_end);
  add(0, sink_end, true);
  if (any_dense) add(sink_end, std::min(local_begin, t + 1), false);
  add(std::max(local_begin, sink_end), t + 1, true);
}

// Splits segments [first, first + count) into `parts` runs of (nearly) equal key counts,
// appending the pieces; returns the first index and count of each part.
void split_segments(const std::vector<Segment>& segs, int first, int count, int64_t num_keys, int parts,
                    std::vector<Segment>* out, std::vector<std::pair<int, int>>* ranges) {
  int si = first;
  int offset = segs[first].begin;  // position within segs[si] where the next part starts
  for (int p = 0; p < parts; ++p) {
    int64_t want = num_keys * (p + 1) / parts - num_keys * p / parts;
    const int part_first = static_cast<int>(out->size());
    while (want > 0) {
      const Segment s = segs[si];
      const int take = static_cast<int>(std::min<int64_t>(want, s.end - offset));
      out->push_back(Segment{offset, offset + take, s.in_window});
      want -= take;
      offset += take;
      if (offset == s.end && si + 1 < first + count) {
        ++si;
        offset = segs[si].begin;
      }
    }
    ranges->push_back({part_first, static_cast<int>(out->size()) - part_first});
  }
}

// dst <- the state of the union of the keys dst and src saw (one head, one branch).
void merge_state(float* dst, const float* src, int d) {
  if (src[0] == -INFINITY) return;
  if (dst[0] == -INFINITY) {
    std::copy(src, src + d + 2, dst);
    return;
  }
  const float m = std::max(dst[0], src[0]);
  const float cd = std::exp(dst[0] - m);
  const float cs = std::exp(src[0] - m);
  dst[0] = m;
  dst[1] = dst[1] * cd + src[1] * cs;
  for (int x = 0; x < d; ++x) dst[2 + x] = dst[2 + x] * cd + src[2 + x] * cs;
}

// Writes the outputs of the group's query heads from the merged state.
void finalize(const LayerAttentionCall& c, const WorkItem& item, const float* state, const uint8_t* flags) {
  const int group = c.num_heads / c.num_kv_heads;
  const int d = c.head_dim;
  const size_t stride = state_stride(d);
  const bool mixed = impl_of(c) == AttentionImpl::kMixed;
  const float* gates = mixed ? c.seq->gates->layer_gates(c.layer) : nullptr;
  for (int h = 0; h < group; ++h) {
    const int qh = item.kv_head * group + h;
    float* out = c.out + (static_cast<size_t>(item.token) * c.num_heads + qh) * d;
    const float* dense = state + static_cast<size_t>(h) * stride;
    const float* window = state + static_cast<size_t>(group + h) * stride;
    const bool need_dense = flags[h] != 0, need_window = flags[group + h] != 0;
    if (need_dense && need_window) {
      const float a = gates[qh];
      for (int x = 0; x < d; ++x) out[x] = a * (dense[2 + x] / dense[1]) + (1.0f - a) * (window[2 + x] / window[1]);
    } else {
      const float* st = need_dense ? dense : window;
      for (int x = 0; x < d; ++x) out[x] = st[2 + x] / st[1];
    }
  }
}

}  // namespace

bool paged_attention_supports(const LayerAttentionCall& call) {
  return call.num_kv_heads > 0 && call.num_heads / call.num_kv_heads <= kMaxGroup;
}

const char* paged_attention_kernel_name() {
  switch (kernels::active_isa()) {
    case kernels::Isa::kAvx512: return "paged_flash_avx512";
    case kernels::Isa::kAvx2: return "paged_flash_avx2";
    case kernels::Isa::kScalar: break;
  }
  return "paged_flash_scalar";
}

void paged_attention(const LayerAttentionCall* calls, int num_calls) {
  std::vector<uint8_t> flags;
  std::vector<Segment> segments;
  std::vector<WorkItem> items;
  int64_t num_queries = 0;  // (token, KV head) pairs over all calls
  for (int ci = 0; ci < num_calls; ++ci) {
    const LayerAttentionCall& c = calls[ci];
    HS_CHECK(c.num_kv_heads > 0 && c.num_heads % c.num_kv_heads == 0 && paged_attention_supports(c))
        << "paged attention: H " << c.num_heads << " Hkv " << c.num_kv_heads;
    HS_CHECK(c.kv.num_kv_heads == c.num_kv_heads && c.kv.head_dim == c.head_dim) << "KV view does not match the call";
    HS_CHECK(c.num_tokens == 0 || (c.first_position + c.num_tokens - 1) / c.kv.block_size < c.kv.num_logical_blocks)
        << "block table of " << c.kv.num_logical_blocks << " blocks does not cover position "
        << c.first_position + c.num_tokens - 1;
    HS_CHECK(impl_of(c) != AttentionImpl::kMixed || c.seq->gates) << "mixed attention without gates";
    num_queries += static_cast<int64_t>(c.num_tokens) * c.num_kv_heads;
  }
  const int threads = num_threads();
  // Split the context only when there are too few (token, KV head) items to occupy the
  // threads: decode of a few sequences. Prefill has plenty of items.
  const int max_splits = num_queries >= 2 * threads ? 1 : static_cast<int>((2 * threads + num_queries - 1) / std::max<int64_t>(1, num_queries));

  std::vector<Segment> unsplit;
  std::vector<std::pair<int, int>> ranges;
  size_t split_state_floats = 0;
  for (int ci = 0; ci < num_calls; ++ci) {
    const LayerAttentionCall& c = calls[ci];
    const int group = c.num_heads / c.num_kv_heads;
    const AttentionImpl impl = impl_of(c);
    const StreamingRule rule = c.seq != nullptr ? c.seq->rule : StreamingRule{};
    for (int kvh = 0; kvh < c.num_kv_heads; ++kvh) {
      // Which branch each head of this group needs; constant over the call's tokens.
      const size_t flag_offset = flags.size();
      bool any_dense = false, any_window = false;
      for (int h = 0; h < group; ++h) {
        bool dense = impl == AttentionImpl::kEager, window = impl == AttentionImpl::kStreaming;
        if (impl == AttentionImpl::kMixed) {
          const float a = c.seq->gates->gate(c.layer, kvh * group + h);
          dense = a != 0.0f;   // a == 0: the dense branch has weight 0
          window = a != 1.0f;  // a == 1: the streaming branch has weight 0
        }
        flags.push_back(dense);
        any_dense |= dense;
        any_window |= window;
      }
      for (int h = 0; h < group; ++h) {
        bool window = impl == AttentionImpl::kStreaming;
        if (impl == AttentionImpl::kMixed) window = c.seq->gates->gate(c.layer, kvh * group + h) != 1.0f;
        flags.push_back(window);
      }
      // Latest tokens first: they have the most keys, and dynamic scheduling balances best
      // when the largest items start first.
      for (int i = c.num_tokens - 1; i >= 0; --i) {
        const int t = c.first_position + i;
        unsplit.clear();
        append_segments(rule, t, any_dense, any_window, &unsplit);
        int64_t num_keys = 0;
        for (const Segment& s : unsplit) num_keys += s.end - s.begin;
        const int parts = static_cast<int>(std::clamp<int64_t>(num_keys / kMinKeysPerSplit, 1, max_splits));
        WorkItem item;
        item.call = ci;
        item.token = i;
        item.kv_head = kvh;
        item.num_splits = parts;
        item.flags = flag_offset;
        if (parts == 1) {
          item.first_segment = static_cast<int>(segments.size());
          item.num_segments = static_cast<int>(unsplit.size());
          segments.insert(segments.end(), unsplit.begin(), unsplit.end());
          items.push_back(item);
          continue;
        }
        ranges.clear();
        split_segments(unsplit, 0, static_cast<int>(unsplit.size()), num_keys, parts, &segments, &ranges);
        for (const auto& [first, count] : ranges) {
          item.first_segment = first;
          item.num_segments = count;
          item.state = split_state_floats;
          split_state_floats += state_floats(group, c.head_dim);
          items.push_back(item);
        }
      }
    }
  }

  const ItemKernel kernel = active_kernel();
  std::vector<float> split_states(split_state_floats);
  const int64_t num_items = static_cast<int64_t>(items.size());

#pragma omp parallel for schedule(dynamic, 1) if (num_items > 1 && threads > 1)
  for (int64_t idx = 0; idx < num_items; ++idx) {
    const WorkItem& item = items[static_cast<size_t>(idx)];
    const LayerAttentionCall& c = calls[item.call];
    const int group = c.num_heads / c.num_kv_heads;
    const int d = c.head_dim;
    thread_local std::vector<float> scratch;
    const size_t need = scratch_floats(group, d) + state_floats(group, d);
    if (scratch.size() < need) scratch.resize(need);
    ItemArgs args = item_args(c, item.token, item.kv_head);
    args.segments = segments.data() + item.first_segment;
    args.num_segments = item.num_segments;
    args.need_dense = flags.data() + item.flags;
    args.need_window = flags.data() + item.flags + group;
    float* state = item.num_splits == 1 ? scratch.data() + scratch_floats(group, d) : split_states.data() + item.state;
    kernel(args, state, scratch.data());
    if (item.num_splits == 1) finalize(c, item, state, flags.data() + item.flags);
  }

  if (split_state_floats == 0) return;
  // Merge the splits of each (call, token, KV head): consecutive items, first one leads.
  std::vector<size_t> leaders;
  for (size_t i = 0; i < items.size();) {
    if (items[i].num_splits > 1) leaders.push_back(i);
    i += static_cast<size_t>(items[i].num_splits);
  }
  const int64_t num_leaders = static_cast<int64_t>(leaders.size());
#pragma omp parallel for schedule(static) if (num_leaders > 1 && threads > 1)
  for (int64_t li = 0; li < num_leaders; ++li) {
    const WorkItem& lead = items[leaders[static_cast<size_t>(li)]];
    const LayerAttentionCall& c = calls[lead.call];
    const int group = c.num_heads / c.num_kv_heads;
    const int d = c.head_dim;
    float* dst = split_states.data() + lead.state;
    for (int s = 1; s < lead.num_splits; ++s) {
      const float* src = split_states.data() + items[leaders[static_cast<size_t>(li)] + s].state;
      for (int b = 0; b < 2 * group; ++b) merge_state(dst + b * state_stride(d), src + b * state_stride(d), d);
    }
    finalize(c, lead, dst, flags.data() + lead.flags);
  }
}

void attend(const LayerAttentionCall& call) { attend_many(&call, 1); }

void attend_many(const LayerAttentionCall* calls, int num_calls) {
  std::vector<LayerAttentionCall> fast;
  fast.reserve(static_cast<size_t>(num_calls));
  for (int i = 0; i < num_calls; ++i) {
    const LayerAttentionCall& c = calls[i];
    if (c.num_tokens == 0) continue;
    if (c.seq != nullptr && c.seq->impl == AttentionImpl::kNsa) {
      // NSA runs its own parallel regions and updates the sequence's compressed cache.
      HS_CHECK(c.nsa_state != nullptr && c.q_unrotated && c.k_unrotated && c.attn_input)
          << "nsa attention without its inputs";
      nsa_attend(c, NsaLayerInputs{c.q_unrotated, c.k_unrotated, c.attn_input, c.hidden_size}, *c.seq->nsa,
                 *c.nsa_state);
      continue;
    }
    const bool reference = (c.seq != nullptr && c.seq->kernel == AttentionKernel::kReference) ||
                           !paged_attention_supports(c);
    if (reference) {
      attention_reference(c);
    } else {
      fast.push_back(c);
    }
  }
  if (!fast.empty()) paged_attention(fast.data(), static_cast<int>(fast.size()));
}

}  // namespace hotswap
