// The sparse attention kernel of `masked` (attention/masked/sparse_attention.h) alone, against
// the floor of its reads (bench/gather_floor.h): one decode token of one layer of the
// Llama-3.2-1B shape (H 32, Hkv 8, d 64, 16-token pages in shuffled physical order, bf16 KV),
// one item per KV head whose keys are the union of its 4 query heads' selections, each query
// head attending its own share (bias 0) and not the rest (-inf). Selections are drawn fresh for
// every call (as each decode step selects anew) in two shapes: "keys", each query head picking
// `density` of the positions at random (HashAttention / MagicPig at 5%), and "pages", each
// picking whole 16-key pages (Quest with a 2K-token budget). Times are wall time of
// sparse_attention over the 8 items, median of --reps calls; floor = the same rows gathered
// by the probe at the same working set.
//   build/bin/sparse_kernel_bench [--context=32768] [--reps=15] [--kv_dtype=bf16|f32|q8]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "attention/masked/sparse_attention.h"
#include "core/huge_buffer.h"
#include "core/touch_lines.h"
#include "gather_floor.h"
#include "kv_cache/kv_layout.h"
#include "kv_cache/kv_storage.h"
#include "long_context_util.h"

namespace hotswap {
namespace {

volatile uint64_t g_sink = 0;
constexpr int kHeads = 32, kKvHeads = 8, kHeadDim = 64, kGroup = kHeads / kKvHeads, kPage = 16;

struct Layer {
  std::vector<int32_t> table;
  HugeBuffer k, v;
  PagedKvView view;
  Layer(int context, KvDtype dtype) {
    const int blocks = (context + kPage - 1) / kPage;
    table.resize(static_cast<size_t>(blocks));
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), std::mt19937_64(2));
    const size_t ru = kv_row_units(dtype, kHeadDim);
    const size_t rows = static_cast<size_t>(blocks) * kKvHeads * kPage;
    k = allocate_huge_buffer(rows * ru * kv_dtype_size(dtype));
    v = allocate_huge_buffer(rows * ru * kv_dtype_size(dtype));
    std::vector<float> row(kHeadDim);
    for (size_t r = 0; r < rows; ++r) {
      bench::fill_normal(row.data(), kHeadDim, 2 * r);
      store_kv_row(dtype, row.data(), kHeadDim, k.get(), r * ru);
      bench::fill_normal(row.data(), kHeadDim, 2 * r + 1);
      store_kv_row(dtype, row.data(), kHeadDim, v.get(), r * ru);
    }
    view = PagedKvView{k.get(), v.get(), table.data(), blocks, kPage, kKvHeads, kHeadDim};
    view.dtype = dtype;
  }
};

// One KV head's item inputs: the union of its query heads' picks and their biases.
struct ItemInputs {
  std::vector<int32_t> keys;
  std::vector<float> bias;  // [group][keys]
};

ItemInputs select(int context, bool pages, double density, std::mt19937_64& rng) {
  const int unit = pages ? kPage : 1;
  const int units = (context + unit - 1) / unit;
  std::vector<std::vector<char>> picked(kGroup, std::vector<char>(static_cast<size_t>(units), 0));
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (auto& p : picked)
    for (char& x : p) x = u(rng) < density;
  ItemInputs in;
  std::vector<int> owner_units;
  for (int i = 0; i < units; ++i) {
    bool any = false;
    for (auto& p : picked) any = any || p[static_cast<size_t>(i)];
    if (!any) continue;
    for (int pos = i * unit; pos < std::min(context, (i + 1) * unit); ++pos) {
      in.keys.push_back(pos);
      owner_units.push_back(i);
    }
  }
  const size_t n = in.keys.size();
  in.bias.assign(static_cast<size_t>(kGroup) * n, 0.0f);
  for (int h = 0; h < kGroup; ++h)
    for (size_t j = 0; j < n; ++j)
      if (!picked[static_cast<size_t>(h)][static_cast<size_t>(owner_units[j])]) in.bias[h * n + j] = -INFINITY;
  return in;
}

double run_once(const Layer& layer, const std::vector<ItemInputs>& in, const std::vector<float>& q, std::vector<float>& out) {
  std::vector<SparseAttentionItem> items(kKvHeads);
  for (int h = 0; h < kKvHeads; ++h) {
    SparseAttentionItem& it = items[static_cast<size_t>(h)];
    it.q = q.data() + static_cast<size_t>(h) * kGroup * kHeadDim;
    it.group = kGroup;
    it.kv_head = h;
    it.kv = &layer.view;
    it.keys = in[static_cast<size_t>(h)].keys.data();
    it.num_keys = static_cast<int>(in[static_cast<size_t>(h)].keys.size());
    it.bias = in[static_cast<size_t>(h)].bias.data();
    it.scale = 0.125f;
    it.out = out.data() + static_cast<size_t>(h) * kGroup * kHeadDim;
  }
  const auto t0 = std::chrono::steady_clock::now();
  sparse_attention(items.data(), kKvHeads);
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace
}  // namespace hotswap

int main(int argc, char** argv) {
  using namespace hotswap;
  int context = 32768, reps = 15;
  KvDtype dtype = KvDtype::kBf16;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--context=", 0) == 0) context = std::max(64, std::atoi(a.c_str() + 10));
    else if (a.rfind("--reps=", 0) == 0) reps = std::max(1, std::atoi(a.c_str() + 7));
    else if (a.rfind("--kv_dtype=", 0) == 0) { if (!bench::parse_kv_dtype(a.substr(11), &dtype)) return 2; }
    else { std::fprintf(stderr, "unknown argument %s (--context=N, --reps=N, --kv_dtype=f32|bf16|q8)\n", a.c_str()); return 2; }
  }
  const Layer layer(context, dtype);
  const size_t row_bytes = kv_row_units(dtype, kHeadDim) * kv_dtype_size(dtype);
  bench::RowGatherProbe probe(2 * layer.table.size() * kKvHeads * kPage * row_bytes, row_bytes, kPage);
  std::vector<float> q(static_cast<size_t>(kHeads) * kHeadDim), out(q.size());
  bench::fill_normal(q.data(), q.size(), 99);
  std::mt19937_64 rng(5);
  std::printf("sparse_attention over %d items (Hkv %d, group %d, d %d, %s KV), context %d, %s, median of %d calls\n",
              kKvHeads, kKvHeads, kGroup, kHeadDim, kv_dtype_name(dtype), context, sparse_attention_kernel_name(), reps);
  std::printf("%-6s %-5s %8s %10s %10s %10s %10s %8s\n", "shape", "rows", "density", "keys/KVh", "us/call", "ns/key",
              "floor us", "x floor");
  const size_t kv_bytes = layer.table.size() * kKvHeads * kPage * row_bytes;
  struct Shape { const char* name; bool pages; double density; };
  for (const Shape s : {Shape{"keys", false, 0.05}, Shape{"pages", true, 2048.0 / context}}) {
    for (const bench::Residency where : {bench::Residency::kWarm, bench::Residency::kCold}) {
      std::vector<double> us;
      double keys = 0;
      for (int r = 0; r < reps; ++r) {
        std::vector<ItemInputs> in;
        for (int h = 0; h < kKvHeads; ++h) in.push_back(select(context, s.pages, s.density, rng));
        size_t total = 0;
        for (const ItemInputs& i : in) total += i.keys.size();
        keys = static_cast<double>(total) / kKvHeads;
        if (where == bench::Residency::kWarm) {  // the layer just streamed, as by a dense step
          g_sink = g_sink + touch_lines(layer.k.get(), kv_bytes) + touch_lines(layer.v.get(), kv_bytes);
        } else {  // as in a model whose layers' caches do not fit the caches
          probe.evict();
        }
        us.push_back(run_once(layer, in, q, out));
      }
      std::sort(us.begin(), us.end());
      const double t = us[us.size() / 2];
      const double floor = keys * kKvHeads * probe.scattered_ns_per_key(s.pages ? kPage : 1, keys / context, where) / 1e3;
      std::printf("%-6s %-5s %7.1f%% %10.0f %10.0f %10.1f %10.0f %7.1fx\n", s.name,
                  where == bench::Residency::kWarm ? "warm" : "cold", 100 * s.density, keys, t,
                  t * 1e3 / (keys * kKvHeads), floor, t / floor);
    }
  }
  return 0;
}
