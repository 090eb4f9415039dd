// Dispatcher of the paged attention kernel: turns calls into work items (which keys each
// query walks, which branches each head needs), runs them in parallel with the kernel of the
// active ISA, merges context splits and writes each head's output.
#include "attention/paged_attention.h"

#include "core/check.h"

#include <algorithm>
#include <vector>

#include "attention/kernel_dispatch.h"
#include "attention/paged/paged_pattern.h"
#include "attention/paged_attention_kernel.h"

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

// A (call, token, KV head) query, or one context split of it.
struct WorkItem : SplitPart {
  int call = 0;
  int token = 0;       // the first of num_tokens consecutive tokens
  int num_tokens = 1;  // > 1 only for a prefill block
  bool block = false;  // a prefill block (paged_prefill_simd.inc), of any num_tokens
  int kv_head = 0;
  int first_segment = 0;
  int num_segments = 0;
  size_t flags = 0;  // need_dense at flags, need_window at flags + group
};

PagedKind kind_of(const LayerAttentionCall& c) { return paged_pattern(c).kind; }

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

// Tokens per prefill block of call c (1: one-token items). A block needs every head dense
// over [0, t] (no streaming window) and an unsplit context; it shrinks until the call gives
// each thread two items.
int tokens_per_block(const LayerAttentionCall& c, bool any_window, int max_splits, int threads) {
  if (any_window || max_splits > 1 || c.num_tokens < 2) return 1;
  int t = block_tokens(c.num_heads / c.num_kv_heads);
  while (t > 1 && static_cast<int64_t>((c.num_tokens + t - 1) / t) * c.num_kv_heads < 2 * threads) t /= 2;
  return t;
}

// Writes the outputs of the group's query heads from the merged state.
void finalize(const LayerAttentionCall& c, const WorkItem& item, const float* state, const uint8_t* flags) {
  const int group = c.num_heads / c.num_kv_heads;
  const int d = c.head_dim;
  const size_t stride = state_stride(d);
  const bool mixed = kind_of(c) == PagedKind::kMixed;
  const float* gates = mixed ? paged_pattern(c).gates->layer_gates(c.layer) : nullptr;
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
  return for_active_isa("paged_flash_avx512", "paged_flash_avx2", "paged_flash_scalar");
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
    HS_CHECK(kind_of(c) != PagedKind::kMixed || paged_pattern(c).gates) << "mixed attention without gates";
    num_queries += static_cast<int64_t>(c.num_tokens) * c.num_kv_heads;
  }
  const int threads = kernel_threads();
  // Split the context only when there are too few (token, KV head) items to occupy the
  // threads: decode of a few sequences. Prefill has plenty of items.
  const int max_splits = max_splits_per_item(num_queries, threads);

  const BlockKernel block_kernel = for_active_isa(avx512_block_kernel(), avx2_block_kernel(), BlockKernel{nullptr});
  std::vector<Segment> unsplit;
  std::vector<std::pair<int, int>> ranges;
  for (int ci = 0; ci < num_calls; ++ci) {
    const LayerAttentionCall& c = calls[ci];
    const int group = c.num_heads / c.num_kv_heads;
    const PagedPattern& pattern = paged_pattern(c);
    const PagedKind kind = pattern.kind;
    const StreamingRule rule = pattern.rule;
    for (int kvh = 0; kvh < c.num_kv_heads; ++kvh) {
      // Which branch each head of this group needs; constant over the call's tokens.
      const size_t flag_offset = flags.size();
      bool any_dense = false, any_window = false;
      for (int h = 0; h < group; ++h) {
        bool dense = kind == PagedKind::kEager, window = kind == PagedKind::kStreaming;
        if (kind == PagedKind::kMixed) {
          const float a = pattern.gates->gate(c.layer, kvh * group + h);
          dense = a != 0.0f;   // a == 0: the dense branch has weight 0
          window = a != 1.0f;  // a == 1: the streaming branch has weight 0
        }
        flags.push_back(dense);
        any_dense |= dense;
        any_window |= window;
      }
      for (int h = 0; h < group; ++h) {
        bool window = kind == PagedKind::kStreaming;
        if (kind == PagedKind::kMixed) window = pattern.gates->gate(c.layer, kvh * group + h) != 1.0f;
        flags.push_back(window);
      }
      // Latest tokens first: they have the most keys, and dynamic scheduling balances best
      // when the largest items start first.
      const int block = block_kernel ? tokens_per_block(c, any_window, max_splits, threads) : 1;
      if (block > 1) {
        for (int end = c.num_tokens; end > 0; end -= block) {
          WorkItem item;
          item.call = ci;
          item.token = std::max(0, end - block);
          item.num_tokens = end - item.token;
          item.block = true;
          item.kv_head = kvh;
          item.flags = flag_offset;
          items.push_back(item);
        }
        continue;
      }
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
          items.push_back(item);
        }
      }
    }
  }

  const ItemKernel kernel = for_active_isa(avx512_item_kernel(), avx2_item_kernel(), scalar_item_kernel());
  auto shape = [calls](const WorkItem& item) {
    const LayerAttentionCall& c = calls[item.call];
    const int group = c.num_heads / c.num_kv_heads;
    const size_t scratch = item.block ? block_scratch_floats(group, c.head_dim, item.num_tokens)
                                               : scratch_floats(group, c.head_dim);
    return WorkShape{scratch, 2 * group * item.num_tokens, c.head_dim};
  };
  auto run = [&](const WorkItem& item, float* state, float* scratch) {
    const LayerAttentionCall& c = calls[item.call];
    const int group = c.num_heads / c.num_kv_heads;
    ItemArgs args = item_args(c, item.token, item.kv_head);
    if (item.block) {
      const BlockArgs block{args, item.num_tokens, c.first_position + item.token,
                            static_cast<size_t>(c.num_heads) * c.head_dim};
      block_kernel(block, state, scratch);
      return;
    }
    args.segments = segments.data() + item.first_segment;
    args.num_segments = item.num_segments;
    args.need_dense = flags.data() + item.flags;
    args.need_window = flags.data() + item.flags + group;
    kernel(args, state, scratch);
  };
  auto finish = [&](const WorkItem& item, const float* state) {
    const LayerAttentionCall& c = calls[item.call];
    WorkItem token = item;
    for (int i = 0; i < item.num_tokens; ++i, ++token.token) {
      finalize(c, token, state + i * state_floats(c.num_heads / c.num_kv_heads, c.head_dim), flags.data() + item.flags);
    }
  };
  run_work_items(items, threads, shape, run, finish);
}

}  // namespace hotswap
