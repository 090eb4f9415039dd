#include "sampling/row_ops.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>

#include "core/check.h"

namespace hotswap::sampling {
namespace {

// Independent accumulators per lane let the compiler keep them in one or two vector
// registers; a single scalar accumulator would serialise the loop (no -ffast-math here).
constexpr size_t kLanes = 16;
// Blocks skipped by one vectorised "any" test in the scans below. The flag is an int: GCC
// does not vectorise a bool |= reduction.
constexpr size_t kSkipBlock = 64;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// GCC/Clang generic vector: lowered to the target's SIMD (AVX-512, AVX2, SSE2) or scalar
// code. Used where the auto-vectoriser refuses a float max reduction without -ffast-math.
using F32x16 = float __attribute__((vector_size(kLanes * sizeof(float))));

// Up to this k, select_top keeps a k-element heap while scanning (O(n) in practice, since
// most entries lose to the current k-th best after a short warm-up); above it,
// nth_element over an index array is cheaper.
constexpr int kHeapMaxK = 1024;

// Replaces the worst entry of a select_top heap (its front) with `id`, which ranks before
// it, and sifts it down; returns the new worst value. Kept out of line so the scan loop
// that calls it rarely stays small enough to live in registers.
[[gnu::noinline]] float replace_worst(std::vector<int32_t>& heap, int32_t id, const RanksBefore& ranks_before) {
  const size_t size = heap.size();
  size_t pos = 0;
  for (;;) {
    size_t child = 2 * pos + 1;
    if (child >= size) break;
    if (child + 1 < size && ranks_before(heap[child], heap[child + 1])) ++child;  // the worse child
    if (!ranks_before(id, heap[child])) break;
    heap[pos] = heap[child];
    pos = child;
  }
  heap[pos] = id;
  return rank_key(ranks_before.row[heap.front()]);
}

double exp_sum_span(const float* p, size_t len, float shift) {
  float lane[kLanes] = {};
  size_t i = 0;
  for (; i + kSkipBlock <= len; i += kSkipBlock) {
    // After top-k nearly every block is fully masked; testing is ~5x cheaper than exp.
    int any = 0;
    for (size_t j = 0; j < kSkipBlock; ++j) any |= p[i + j] > kNegInf;
    if (!any) continue;
    for (size_t b = 0; b < kSkipBlock; b += kLanes) {
      for (size_t j = 0; j < kLanes; ++j) lane[j] += fast_exp(p[i + b + j] - shift);
    }
  }
  for (; i + kLanes <= len; i += kLanes) {
    for (size_t j = 0; j < kLanes; ++j) lane[j] += fast_exp(p[i + j] - shift);
  }
  double sum = 0;
  for (; i < len; ++i) sum += fast_exp(p[i] - shift);
  for (size_t j = 0; j < kLanes; ++j) sum += lane[j];
  return sum;
}

}  // namespace

float max_value(std::span<const float> row) {
  const float* p = row.data();
  const size_t n = row.size();
  F32x16 lanes;
  for (size_t j = 0; j < kLanes; ++j) lanes[j] = kNegInf;
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    F32x16 x;
    std::memcpy(&x, p + i, sizeof x);
    lanes = x > lanes ? x : lanes;
  }
  float m = kNegInf;
  for (size_t j = 0; j < kLanes; ++j) m = lanes[j] > m ? lanes[j] : m;
  for (; i < n; ++i) m = p[i] > m ? p[i] : m;
  return m;
}

int32_t argmax_first(std::span<const float> row) {
  if (row.empty()) return -1;
  const float m = max_value(row);
  const float* p = row.data();
  const size_t n = row.size();
  size_t i = 0;
  // Skip whole blocks that cannot hold the maximum, then locate it inside the block.
  for (; i + kSkipBlock <= n; i += kSkipBlock) {
    int any = 0;
    for (size_t j = 0; j < kSkipBlock; ++j) any |= p[i + j] == m;
    if (any) break;
  }
  for (; i < n; ++i) {
    if (p[i] == m) return static_cast<int32_t>(i);
  }
  return -1;
}

double sum_exp(std::span<const float> row, float shift) {
  double sum = 0;
  for (size_t begin = 0; begin < row.size(); begin += kSumBlock) {
    const size_t len = std::min<size_t>(kSumBlock, row.size() - begin);
    sum += exp_sum_span(row.data() + begin, len, shift);
  }
  return sum;
}

void block_sum_exp(std::span<const float> row, float shift, std::vector<double>& block_sums) {
  const size_t num_blocks = (row.size() + kSumBlock - 1) / kSumBlock;
  block_sums.resize(num_blocks);
  for (size_t b = 0; b < num_blocks; ++b) {
    const size_t begin = b * kSumBlock;
    const size_t len = std::min<size_t>(kSumBlock, row.size() - begin);
    block_sums[b] = exp_sum_span(row.data() + begin, len, shift);
  }
}

void select_top(std::span<const float> row, int k, std::vector<int32_t>& out) {
  HS_CHECK(k >= 0 && static_cast<size_t>(k) <= row.size()) << "k=" << k << " row size " << row.size();
  out.clear();
  if (k == 0) return;
  const float* p = row.data();
  const size_t n = row.size();
  const RanksBefore ranks_before{p};

  if (k > kHeapMaxK) {
    out.resize(n);
    std::iota(out.begin(), out.end(), 0);
    std::nth_element(out.begin(), out.begin() + (k - 1), out.end(), ranks_before);
    out.resize(static_cast<size_t>(k));
    std::sort(out.begin(), out.end(), ranks_before);
    return;
  }

  // Heap ordered by ranks_before, so front() is the worst of the current k best. Entries are
  // scanned in index order, so a newcomer equal to the worst ranks after it and is skipped;
  // so is NaN, since no comparison with it is true.
  out.resize(static_cast<size_t>(k));
  std::iota(out.begin(), out.end(), 0);
  std::make_heap(out.begin(), out.end(), ranks_before);
  float worst = rank_key(p[out.front()]);
  size_t i = static_cast<size_t>(k);
  for (; i < n && i % kSkipBlock != 0; ++i) {
    if (p[i] > worst) worst = replace_worst(out, static_cast<int32_t>(i), ranks_before);
  }
  for (; i + kSkipBlock <= n; i += kSkipBlock) {
    int any = 0;
    for (size_t j = 0; j < kSkipBlock; ++j) any |= p[i + j] > worst;
    if (!any) continue;
    for (size_t j = i; j < i + kSkipBlock; ++j) {
      if (p[j] > worst) worst = replace_worst(out, static_cast<int32_t>(j), ranks_before);
    }
  }
  for (; i < n; ++i) {
    if (p[i] > worst) worst = replace_worst(out, static_cast<int32_t>(i), ranks_before);
  }
  std::sort(out.begin(), out.end(), ranks_before);
}

}  // namespace hotswap::sampling
