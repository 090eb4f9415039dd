// Internal to attention/masked/: the vector kernels of the summarising maskers' selection
// (select_summarised.cc) and of select_keys' collect, in a portable build
// (select_kernels.cc) and an AVX-512 one (select_kernels_avx512.cc, compiled with a target
// pragma), picked once per call by kernels::active_isa(). Both builds give the same bits:
// every kernel is integer work or the float32 operations of its portable loop, in its order.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hotswap::masked::detail {

// A byte no Hamming distance reaches (signatures have at most 64 bits): marks keys that a
// top-k must skip.
inline constexpr uint8_t kSkipKey = 0xFF;

struct SelectKernels {
  // out[i] = popcount(q ^ words[i]) for n signature words of 32 (or 64) bits.
  void (*hamming32)(uint32_t q, const uint32_t* words, int64_t n, uint8_t* out);
  void (*hamming64)(uint64_t q, const uint64_t* words, int64_t n, uint8_t* out);
  // How many of h[0, n) are <= t.
  int64_t (*count_at_most)(const uint8_t* h, int64_t n, int t);
  // The keys i in [0, n) with h[i] < t, and the first `ties` (lowest i) with h[i] == t, in
  // ascending order: w[i] = 1 and i written at keys. Returns how many were taken; keys needs
  // room for 16 more than that (whole vectors are stored).
  int64_t (*take_below)(const uint8_t* h, int64_t n, int t, int64_t ties, float* w, int32_t* keys);
  // The keys with w[i] != 0, ascending, into keys and weights; w is left all zero. Returns
  // how many; keys and weights need room for 16 more.
  int64_t (*gather_nonzero)(float* w, int64_t n, int32_t* keys, float* weights);
  // Quest's page bounds (quest_bound, bit for bit) of every query head h (q[h * d, (h + 1) * d),
  // KV head h / group) over n pages: page p's record starts at records + p * stride and holds
  // [kv_heads][2][d] (min, then max) float32 bounds. scores[h * score_stride + p]. Pages are
  // read in order, each record once for all the heads.
  void (*quest_scores)(const float* records, size_t stride, int64_t n, const float* q, int kv_heads, int group,
                       int d, float* scores, size_t score_stride);
  // MagicPig's collisions: the keys i in [0, n) one of whose `tables` codes (code t of key i
  // at codes + (i * tables + t) * code_bytes, an unsigned word of code_bytes 1, 2, 4 or 8)
  // equals the query's code of that table (qc[t]), ascending, into keys (base + i). Returns
  // how many; keys needs room for 16 more.
  int64_t (*pig_collisions)(const void* codes, int code_bytes, int64_t n, int tables, const uint64_t* qc,
                            int32_t base, int32_t* keys);
};

// Calls scan(codes as const W*) with W the unsigned word of code_bytes (1, 2, 4, else 8): the
// one place a kernel over MagicPig codes turns their width into a type.
template <class Scan>
auto with_code_word(const void* codes, int code_bytes, Scan&& scan) {
  switch (code_bytes) {
    case 1: return scan(static_cast<const uint8_t*>(codes));
    case 2: return scan(static_cast<const uint16_t*>(codes));
    case 4: return scan(static_cast<const uint32_t*>(codes));
    default: return scan(static_cast<const uint64_t*>(codes));
  }
}

const SelectKernels& select_kernels_scalar();
// The AVX-512 build; its hamming entries need AVX512_VPOPCNTDQ and are the portable ones
// on CPUs without it. Only called when the CPU has AVX-512.
const SelectKernels& select_kernels_avx512();
// The build kernels::active_isa() selects (AVX2 CPUs use the portable one).
const SelectKernels& select_kernels();

}  // namespace hotswap::masked::detail
