// The portable build of the selection kernels (select_kernels.h): plain loops the compiler
// may vectorise for the baseline target. The AVX-512 build must give the same results.
#include "attention/masked/select_kernels.h"

#include <bit>

#include "attention/masked/hash_functions.h"
#include "kernels/isa.h"

namespace hotswap::masked::detail {
namespace {

void hamming32(uint32_t q, const uint32_t* words, int64_t n, uint8_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(std::popcount(q ^ words[i]));
}

void hamming64(uint64_t q, const uint64_t* words, int64_t n, uint8_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(std::popcount(q ^ words[i]));
}

int64_t count_at_most(const uint8_t* h, int64_t n, int t) {
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) count += h[i] <= t;
  return count;
}

int64_t take_below(const uint8_t* h, int64_t n, int t, int64_t ties, float* w, int32_t* keys) {
  int64_t taken = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (h[i] < t || (h[i] == t && ties-- > 0)) {
      w[i] = 1.0f;
      keys[taken++] = static_cast<int32_t>(i);
    }
  }
  return taken;
}

int64_t gather_nonzero(float* w, int64_t n, int32_t* keys, float* weights) {
  int64_t m = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (w[i] != 0.0f) {
      keys[m] = static_cast<int32_t>(i);
      weights[m++] = w[i];
      w[i] = 0.0f;
    }
  }
  return m;
}

void quest_scores(const float* records, size_t stride, int64_t n, const float* q, int kv_heads, int group, int d,
                  float* scores, size_t score_stride) {
  for (int64_t p = 0; p < n; ++p) {
    for (int h = 0; h < kv_heads * group; ++h) {
      const float* b = records + static_cast<size_t>(p) * stride + static_cast<size_t>(h / group) * 2 * d;
      scores[static_cast<size_t>(h) * score_stride + static_cast<size_t>(p)] =
          quest_bound(q + static_cast<size_t>(h) * d, b, b + d, d);
    }
  }
}

template <class W>
int64_t pig_collisions_w(const W* codes, int64_t n, int tables, const uint64_t* qc, int32_t base, int32_t* keys) {
  int64_t m = 0;
  for (int64_t i = 0; i < n; ++i, codes += tables) {
    bool match = false;
    for (int t = 0; t < tables; ++t) match |= codes[t] == static_cast<W>(qc[t]);
    keys[m] = base + static_cast<int32_t>(i);
    m += match;
  }
  return m;
}

int64_t pig_collisions(const void* codes, int code_bytes, int64_t n, int tables, const uint64_t* qc, int32_t base,
                       int32_t* keys) {
  return with_code_word(codes, code_bytes, [&](const auto* words) { return pig_collisions_w(words, n, tables, qc, base, keys); });
}

}  // namespace

const SelectKernels& select_kernels_scalar() {
  static const SelectKernels k{hamming32, hamming64, count_at_most, take_below, gather_nonzero, quest_scores,
                               pig_collisions};
  return k;
}

const SelectKernels& select_kernels() {
  return kernels::active_isa() == kernels::Isa::kAvx512 ? select_kernels_avx512() : select_kernels_scalar();
}

}  // namespace hotswap::masked::detail
