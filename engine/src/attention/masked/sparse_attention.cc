// Dispatcher of the sparse attention kernel: turns items into work items (an item's keys,
// split into runs when threads would otherwise idle), runs them in parallel with the kernel
// of the active ISA, merges the splits exactly and writes each head's output. Also the
// double-precision reference.
#include "attention/masked/sparse_attention.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "attention/kernel_dispatch.h"
#include "attention/masked/sparse_attention_kernel.h"
#include "core/check.h"

namespace hotswap {
namespace attention_detail {

void sparse_bad_key(int position, int previous, int64_t limit, bool released_page) {
  HS_CHECK(!released_page) << "sparse attention read position " << position << " from a released KV page";
  HS_CHECK(position > previous) << "sparse attention keys not strictly ascending: " << position << " after "
                                << previous;
  HS_CHECK(false) << "sparse attention key " << position << " outside the block table (" << limit << " positions)";
  __builtin_unreachable();
}

}  // namespace attention_detail

using namespace attention_detail;

namespace {

// An item's keys, or one split of them.
struct WorkItem : SplitPart {
  int item = 0;
  int begin = 0;  // keys [begin, end) of the item
  int end = 0;
};

void check_item(const SparseAttentionItem& it, int index) {
  HS_CHECK(it.q != nullptr && it.out != nullptr && it.kv != nullptr) << "sparse attention item " << index
                                                                      << " without q, out or kv";
  HS_CHECK(it.group >= 1 && it.group <= kSparseMaxGroup) << "sparse attention item " << index << ": group "
                                                         << it.group;
  HS_CHECK(it.kv_head >= 0 && it.kv_head < it.kv->num_kv_heads && it.kv->head_dim > 0 && it.kv->block_size > 0)
      << "sparse attention item " << index << ": KV head " << it.kv_head << " of " << it.kv->num_kv_heads;
  HS_CHECK(it.num_keys >= 0 && (it.num_keys == 0 || (it.keys != nullptr && it.bias != nullptr)))
      << "sparse attention item " << index << ": " << it.num_keys << " keys without keys or bias";
}

SparseItemArgs args_of(const SparseAttentionItem& it, int begin, int end) {
  const PagedKvView& kv = *it.kv;
  const size_t head_stride = static_cast<size_t>(kv.block_size) * kv_row_units(kv.dtype, kv.head_dim);  // units
  SparseItemArgs a;
  a.q = it.q;
  a.scale = it.scale;
  a.group = it.group;
  a.head_dim = kv.head_dim;
  const size_t head_bytes = it.kv_head * head_stride * kv_dtype_size(kv.dtype);
  a.k = static_cast<const char*>(kv.k) + head_bytes;
  a.v = static_cast<const char*>(kv.v) + head_bytes;
  a.dtype = kv.dtype;
  a.blocks = kv.blocks;
  a.num_logical_blocks = kv.num_logical_blocks;
  a.block_size = kv.block_size;
  a.block_stride = static_cast<size_t>(kv.num_kv_heads) * head_stride;
  a.keys = it.keys + begin;
  a.num_keys = end - begin;
  a.bias = it.bias + begin;
  a.bias_stride = static_cast<size_t>(it.num_keys);
  return a;
}

// Writes the item's output rows from its (merged) state; zeros for a head that attended no key.
void finalize(const SparseAttentionItem& it, const float* state) {
  const int d = it.kv->head_dim;
  for (int h = 0; h < it.group; ++h) {
    const float* st = state + h * sparse_state_stride(d);
    float* out = it.out + static_cast<size_t>(h) * d;
    if (st[1] > 0.0f) {
      for (int x = 0; x < d; ++x) out[x] = st[2 + x] / st[1];
    } else {
      std::fill(out, out + d, 0.0f);
    }
  }
}

}  // namespace

namespace attention_detail {

void sparse_attention_run(const SparseAttentionItem* items, int num_items, int max_splits, int min_keys_per_split) {
  HS_CHECK(num_items >= 0 && max_splits >= 1 && min_keys_per_split >= 1) << "sparse attention: bad arguments";
  for (int i = 0; i < num_items; ++i) check_item(items[i], i);
  // Largest items first: dynamic scheduling balances best when the largest start first.
  std::vector<int> order(static_cast<size_t>(num_items));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [items](int a, int b) { return items[a].num_keys > items[b].num_keys; });
  std::vector<WorkItem> work;
  work.reserve(static_cast<size_t>(num_items));
  for (int i : order) {
    const SparseAttentionItem& it = items[i];
    const int parts = std::clamp(it.num_keys / min_keys_per_split, 1, max_splits);
    for (int p = 0; p < parts; ++p) {
      WorkItem w;
      w.item = i;
      w.begin = static_cast<int>(static_cast<int64_t>(it.num_keys) * p / parts);
      w.end = static_cast<int>(static_cast<int64_t>(it.num_keys) * (p + 1) / parts);
      w.num_splits = parts;
      work.push_back(w);
    }
  }

  const SparseItemKernel kernel =
      for_active_isa(sparse_avx512_item_kernel(), sparse_avx2_item_kernel(), sparse_scalar_item_kernel());
  auto shape = [items](const WorkItem& w) {
    const SparseAttentionItem& it = items[w.item];
    return WorkShape{sparse_scratch_floats(it.kv->head_dim), it.group, it.kv->head_dim};
  };
  auto run = [&](const WorkItem& w, float* state, float* scratch) {
    kernel(args_of(items[w.item], w.begin, w.end), state, scratch);
  };
  auto finish = [items](const WorkItem& w, const float* state) { finalize(items[w.item], state); };
  run_work_items(work, kernel_threads(), shape, run, finish);
}

}  // namespace attention_detail

void sparse_attention(const SparseAttentionItem* items, int num_items) {
  // Split keys only when there are too few items to occupy the threads (decode of a few
  // sequences); prefill has plenty of items.
  sparse_attention_run(items, num_items, max_splits_per_item(num_items, kernel_threads()), kSparseMinKeysPerSplit);
}

const char* sparse_attention_kernel_name() {
  return for_active_isa("sparse_gather_avx512", "sparse_gather_avx2", "sparse_gather_scalar");
}

void sparse_attention_reference(const SparseAttentionItem& item) {
  check_item(item, 0);
  const PagedKvView& kv = *item.kv;
  const int d = kv.head_dim;
  const int64_t limit = static_cast<int64_t>(kv.num_logical_blocks) * kv.block_size;
  for (int j = 0; j < item.num_keys; ++j) {
    const int pos = item.keys[j];
    HS_CHECK(pos >= 0 && pos < limit && (j == 0 || pos > item.keys[j - 1]) && kv.blocks[pos / kv.block_size] >= 0)
        << "sparse attention reference: bad key " << pos;
  }
  std::vector<double> s(static_cast<size_t>(item.num_keys));
  std::vector<double> acc(static_cast<size_t>(d));
  std::vector<float> row(static_cast<size_t>(d));  // a bf16 row widened
  for (int h = 0; h < item.group; ++h) {
    const float* q = item.q + static_cast<size_t>(h) * d;
    const float* bias = item.bias + static_cast<size_t>(h) * item.num_keys;
    double m = -INFINITY;
    for (int j = 0; j < item.num_keys; ++j) {
      if (bias[j] == -INFINITY) {
        s[j] = -INFINITY;
        continue;
      }
      const float* k = kv.key_row(item.keys[j], item.kv_head, row.data());
      double dot = 0;
      for (int x = 0; x < d; ++x) dot += static_cast<double>(q[x]) * k[x];
      s[j] = static_cast<double>(item.scale) * dot + bias[j];
      m = std::max(m, s[j]);
    }
    float* out = item.out + static_cast<size_t>(h) * d;
    if (m == -INFINITY) {
      std::fill(out, out + d, 0.0f);
      continue;
    }
    std::fill(acc.begin(), acc.end(), 0.0);
    double total = 0;
    for (int j = 0; j < item.num_keys; ++j) {
      if (s[j] == -INFINITY) continue;
      const double w = std::exp(s[j] - m);
      total += w;
      const float* v = kv.value_row(item.keys[j], item.kv_head, row.data());
      for (int x = 0; x < d; ++x) acc[x] += w * v[x];
    }
    for (int x = 0; x < d; ++x) out[x] = static_cast<float>(acc[x] / total);
  }
}

}  // namespace hotswap
