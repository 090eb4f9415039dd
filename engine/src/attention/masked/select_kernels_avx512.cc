// The AVX-512 build of the selection kernels (select_kernels.h). The target pragma comes
// after every #include, so no header's inline function is compiled for AVX-512; this code
// runs only when kernels::active_isa() says the CPU has it (and VPOPCNTDQ for the Hamming
// distances). Results equal the portable build's bit for bit (tests/unit/masked/
// masked_select_kernels_test.cc).
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "attention/masked/select_kernels.h"

#pragma GCC push_options
// GCC 12's AVX-512 intrinsics self-initialise their "undefined" operands, which
// -Wuninitialized reports at every inlined use.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vpopcntdq,bmi,bmi2,popcnt")

#define HS_INLINE inline __attribute__((always_inline))

namespace hotswap::masked::detail {
namespace {

HS_INLINE __mmask64 first_bits64(int64_t n) { return n >= 64 ? ~__mmask64{0} : _bzhi_u64(~uint64_t{0}, static_cast<unsigned>(n)); }
HS_INLINE __mmask16 first_bits16(int64_t n) { return n >= 16 ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << n) - 1u); }
HS_INLINE __m512i iota16() { return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }

void hamming32(uint32_t q, const uint32_t* words, int64_t n, uint8_t* out) {
  const __m512i qv = _mm512_set1_epi32(static_cast<int>(q));
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = first_bits16(n - i);
    const __m512i x = _mm512_xor_si512(_mm512_maskz_loadu_epi32(m, words + i), qv);
    _mm512_mask_cvtepi32_storeu_epi8(out + i, m, _mm512_popcnt_epi32(x));
  }
}

void hamming64(uint64_t q, const uint64_t* words, int64_t n, uint8_t* out) {
  const __m512i qv = _mm512_set1_epi64(static_cast<long long>(q));
  for (int64_t i = 0; i < n; i += 8) {
    const auto m = static_cast<__mmask8>(first_bits16(std::min<int64_t>(8, n - i)));
    const __m512i x = _mm512_xor_si512(_mm512_maskz_loadu_epi64(m, words + i), qv);
    _mm512_mask_cvtepi64_storeu_epi8(out + i, m, _mm512_popcnt_epi64(x));
  }
}

int64_t count_at_most(const uint8_t* h, int64_t n, int t) {
  const __m512i tv = _mm512_set1_epi8(static_cast<char>(t));
  int64_t count = 0;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64)
    count += _mm_popcnt_u64(_mm512_cmple_epu8_mask(_mm512_loadu_si512(h + i), tv));
  if (i < n) {
    const __mmask64 m = first_bits64(n - i);
    count += _mm_popcnt_u64(_mm512_mask_cmple_epu8_mask(m, _mm512_maskz_loadu_epi8(m, h + i), tv));
  }
  return count;
}

int64_t take_below(const uint8_t* h, int64_t n, int t, int64_t ties, float* w, int32_t* keys) {
  const __m512i tv = _mm512_set1_epi8(static_cast<char>(t));
  const __m512 ones = _mm512_set1_ps(1.0f);
  int64_t taken = 0;
  for (int64_t i = 0; i < n; i += 64) {
    const __mmask64 valid = first_bits64(n - i);
    const __m512i v = _mm512_maskz_loadu_epi8(valid, h + i);
    __mmask64 take = _mm512_mask_cmplt_epu8_mask(valid, v, tv);
    if (ties > 0) {
      __mmask64 eq = _mm512_mask_cmpeq_epu8_mask(valid, v, tv);
      const auto c = static_cast<int64_t>(_mm_popcnt_u64(eq));
      if (c > ties) eq = _pdep_u64(_bzhi_u64(~uint64_t{0}, static_cast<unsigned>(ties)), eq);  // the lowest `ties`
      ties -= std::min(c, ties);
      take |= eq;
    }
    for (int part = 0; take != 0; ++part, take >>= 16) {
      const auto m = static_cast<__mmask16>(take & 0xFFFF);
      if (m == 0) continue;
      const int64_t j = i + 16 * part;
      _mm512_mask_storeu_ps(w + j, m, ones);
      const __m512i idx = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(j)), iota16());
      _mm512_storeu_si512(keys + taken, _mm512_maskz_compress_epi32(m, idx));
      taken += _mm_popcnt_u32(m);
    }
  }
  return taken;
}

int64_t gather_nonzero(float* w, int64_t n, int32_t* keys, float* weights) {
  const __m512 zero = _mm512_setzero_ps();
  int64_t count = 0;
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 valid = first_bits16(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(valid, w + i);
    const __mmask16 m = _mm512_mask_cmpneq_ps_mask(valid, v, zero);  // unordered: NaN counts, as w != 0
    if (m == 0) continue;
    const __m512i idx = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(i)), iota16());
    _mm512_storeu_si512(keys + count, _mm512_maskz_compress_epi32(m, idx));
    _mm512_storeu_ps(weights + count, _mm512_maskz_compress_ps(m, v));
    _mm512_mask_storeu_ps(w + i, m, zero);
    count += _mm_popcnt_u32(m);
  }
  return count;
}

// Sixteen pages' 16-lane partial sums (v[i] lane l = acc[l] of quest_bound for page i) to
// their bounds (lane i = page i), in quest_bound's order: acc[l] + acc[l + 8], then
// + acc[l + 4] of that, then (acc[0] + acc[2]) + (acc[1] + acc[3]) + 0 (the empty tail).
// Each step adds the same two numbers as the scalar loop, only transposed across pages.
HS_INLINE __m512 reduce_pages16(const __m512* v) {
  __m512 c[8];  // pages 2i, 2i+1: lanes 0-7 and 8-15 hold acc[l] + acc[l + 8]
  for (int i = 0; i < 8; ++i)
    c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  __m512 e[4];  // pages 4i..4i+3, one 128-bit quarter each: acc[l] for l < 4 after the second step
  for (int i = 0; i < 4; ++i)
    e[i] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  // Quarter k: [x, y] of pages k and 4 + k (f0), 8 + k and 12 + k (f1); x = acc0 + acc2, y = acc1 + acc3.
  const __m512 f0 = _mm512_add_ps(_mm512_shuffle_ps(e[0], e[1], _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm512_shuffle_ps(e[0], e[1], _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512 f1 = _mm512_add_ps(_mm512_shuffle_ps(e[2], e[3], _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm512_shuffle_ps(e[2], e[3], _MM_SHUFFLE(3, 2, 3, 2)));
  // Lane 4k + m holds page 4m + k.
  const __m512 g = _mm512_add_ps(_mm512_shuffle_ps(f0, f1, _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_ps(f0, f1, _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512i to_page = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_add_ps(_mm512_permutexvar_ps(to_page, g), _mm512_setzero_ps());
}

constexpr int kMaxQueryHeads = 64;  // more: the portable build

// acc + std::max(q * mn, q * mx) for 16 dimensions (vmaxps returns its second operand on
// ties and NaN, as std::max returns its first).
HS_INLINE __m512 bound_step(__m512 acc, __m512 q, __m512 mn, __m512 mx) {
  return _mm512_add_ps(acc, _mm512_max_ps(_mm512_mul_ps(q, mx), _mm512_mul_ps(q, mn)));
}

// 16 consecutive pages (np of them real) for every query head: per page, each KV head's
// bounds are loaded once for its query heads; the 16-lane partial sums wait in `acc` for the
// transposed reduction.
void quest_scores16(const float* records, size_t stride, int np, const float* q, int kv_heads, int group, int d,
                    __m512* acc, float* scores, size_t score_stride) {
  const int heads = kv_heads * group, chunks = d / 16;
  for (int i = 0; i < 16; ++i) {
    const float* rec = records + static_cast<size_t>(i) * stride;
    for (int g = 0; g < kv_heads; ++g) {
      const float* mn = rec + static_cast<size_t>(g) * 2 * d;
      const float* mx = mn + d;
      int a = 0;
      for (; a + 4 <= group; a += 4) {  // four heads' sums at once: the bounds loaded once, four chains
        const int h = g * group + a;
        const float* qh = q + static_cast<size_t>(h) * d;
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        for (int c = 0; c < (i < np ? chunks : 0); ++c) {
          const __m512 lo = _mm512_loadu_ps(mn + 16 * c), hi = _mm512_loadu_ps(mx + 16 * c);
          s0 = bound_step(s0, _mm512_loadu_ps(qh + 16 * c), lo, hi);
          s1 = bound_step(s1, _mm512_loadu_ps(qh + d + 16 * c), lo, hi);
          s2 = bound_step(s2, _mm512_loadu_ps(qh + 2 * d + 16 * c), lo, hi);
          s3 = bound_step(s3, _mm512_loadu_ps(qh + 3 * d + 16 * c), lo, hi);
        }
        acc[static_cast<size_t>(h) * 16 + i] = s0;
        acc[static_cast<size_t>(h + 1) * 16 + i] = s1;
        acc[static_cast<size_t>(h + 2) * 16 + i] = s2;
        acc[static_cast<size_t>(h + 3) * 16 + i] = s3;
      }
      for (; a < group; ++a) {
        const int h = g * group + a;
        const float* qh = q + static_cast<size_t>(h) * d;
        __m512 s0 = _mm512_setzero_ps();
        for (int c = 0; c < (i < np ? chunks : 0); ++c)
          s0 = bound_step(s0, _mm512_loadu_ps(qh + 16 * c), _mm512_loadu_ps(mn + 16 * c), _mm512_loadu_ps(mx + 16 * c));
        acc[static_cast<size_t>(h) * 16 + i] = s0;
      }
    }
  }
  for (int h = 0; h < heads; ++h)
    _mm512_mask_storeu_ps(scores + static_cast<size_t>(h) * score_stride, first_bits16(np), reduce_pages16(acc + static_cast<size_t>(h) * 16));
}

void quest_scores(const float* records, size_t stride, int64_t n, const float* q, int kv_heads, int group, int d,
                  float* scores, size_t score_stride) {
  if (d % 16 != 0 || kv_heads * group > kMaxQueryHeads)
    return select_kernels_scalar().quest_scores(records, stride, n, q, kv_heads, group, d, scores, score_stride);
  thread_local __m512 acc[kMaxQueryHeads * 16];  // 64 KiB; 32 heads use half
  for (int64_t p0 = 0; p0 < n; p0 += 16)
    quest_scores16(records + static_cast<size_t>(p0) * stride, stride, static_cast<int>(std::min<int64_t>(16, n - p0)), q,
                   kv_heads, group, d, acc, scores + p0, score_stride);
}

// Each key's codes against the query's, a register (64 bytes of codes) to a compare; 16
// keys' verdicts make one mask, whose keys are compressed out. W: the code word.
template <class W>
HS_INLINE __mmask64 codes_equal(__mmask64 lanes, const W* kc, __m512i q) {
  const __m512i x = [&] {
    if constexpr (sizeof(W) == 1) return _mm512_maskz_loadu_epi8(lanes, kc);
    else if constexpr (sizeof(W) == 2) return _mm512_maskz_loadu_epi16(static_cast<__mmask32>(lanes), kc);
    else if constexpr (sizeof(W) == 4) return _mm512_maskz_loadu_epi32(static_cast<__mmask16>(lanes), kc);
    else return _mm512_maskz_loadu_epi64(static_cast<__mmask8>(lanes), kc);
  }();
  if constexpr (sizeof(W) == 1) return _mm512_mask_cmpeq_epi8_mask(lanes, x, q);
  else if constexpr (sizeof(W) == 2) return _mm512_mask_cmpeq_epi16_mask(static_cast<__mmask32>(lanes), x, q);
  else if constexpr (sizeof(W) == 4) return _mm512_mask_cmpeq_epi32_mask(static_cast<__mmask16>(lanes), x, q);
  else return _mm512_mask_cmpeq_epi64_mask(static_cast<__mmask8>(lanes), x, q);
}

// 16 keys' verdicts (bit k: key i0 + k collides) to their indices, appended at keys + m.
HS_INLINE int64_t append_hits(uint32_t hit, int64_t i0, int32_t base, int32_t* keys, int64_t m) {
  const __m512i idx = _mm512_add_epi32(iota16(), _mm512_set1_epi32(base + static_cast<int32_t>(i0)));
  _mm512_storeu_si512(keys + m, _mm512_maskz_compress_epi32(static_cast<__mmask16>(hit), idx));
  return m + __builtin_popcount(hit);
}

// A key's codes fill a lane of Record (4 or 8) bytes: 64 / Record keys per register, one
// compare for all their codes against the query's (repeated in every lane), then one test a
// lane for "some table equal". MagicPig's L 8 of 8-bit codes is this form.
template <class W, int Record>
int64_t pig_collisions_lanes(const W* codes, int64_t n, int tables, const uint64_t* qc, int32_t base, int32_t* keys) {
  constexpr int kKeysPerReg = 64 / Record;
  constexpr int kPerReg = 64 / sizeof(W);
  alignas(64) W repeated[kPerReg];
  for (int c = 0; c < kPerReg; ++c) repeated[c] = static_cast<W>(qc[c % tables]);
  const __m512i q = _mm512_load_si512(repeated);
  const auto* bytes = reinterpret_cast<const char*>(codes);
  int64_t m = 0;
  for (int64_t i0 = 0; i0 < n; i0 += 16) {
    const int keys_here = static_cast<int>(std::min<int64_t>(16, n - i0));
    uint32_t hit = 0;
    for (int k0 = 0; k0 < keys_here; k0 += kKeysPerReg) {
      const int in_reg = std::min(kKeysPerReg, keys_here - k0);
      const __mmask64 lanes = in_reg == kKeysPerReg ? ~__mmask64{0} : (__mmask64{1} << (in_reg * Record)) - 1;
      const __m512i x = _mm512_maskz_loadu_epi8(lanes, bytes + (i0 + k0) * Record);
      const __m512i equal = [&] {  // all ones in every code equal to the query's
        if constexpr (sizeof(W) == 1) return _mm512_movm_epi8(_mm512_cmpeq_epi8_mask(x, q));
        else if constexpr (sizeof(W) == 2) return _mm512_movm_epi16(_mm512_cmpeq_epi16_mask(x, q));
        else if constexpr (sizeof(W) == 4) return _mm512_movm_epi32(_mm512_cmpeq_epi32_mask(x, q));
        else return _mm512_movm_epi64(_mm512_cmpeq_epi64_mask(x, q));
      }();
      uint32_t key_hits = Record == 8 ? _mm512_test_epi64_mask(equal, equal) : _mm512_test_epi32_mask(equal, equal);
      key_hits &= (uint32_t{1} << in_reg) - 1;  // lanes past the last key read zeros, which may equal a code
      hit |= key_hits << k0;
    }
    m = append_hits(hit, i0, base, keys, m);
  }
  return m;
}

template <class W>
int64_t pig_collisions_w(const W* codes, int64_t n, int tables, const uint64_t* qc, int32_t base, int32_t* keys) {
  if (tables * sizeof(W) == 8) return pig_collisions_lanes<W, 8>(codes, n, tables, qc, base, keys);
  if constexpr (sizeof(W) <= 4)
    if (tables * sizeof(W) == 4) return pig_collisions_lanes<W, 4>(codes, n, tables, qc, base, keys);
  constexpr int kPerReg = 64 / sizeof(W);
  constexpr int kMaxRegs = 8;  // codes per key up to 8 registers; more go to the portable loop
  const int regs = (tables + kPerReg - 1) / kPerReg;
  if (regs > kMaxRegs)
    return select_kernels_scalar().pig_collisions(codes, sizeof(W), n, tables, qc, base, keys);
  __m512i q[kMaxRegs];
  __mmask64 lanes[kMaxRegs];
  alignas(64) W packed[kPerReg];
  for (int r = 0; r < regs; ++r) {
    const int here = std::min(kPerReg, tables - r * kPerReg);
    lanes[r] = here >= 64 ? ~__mmask64{0} : (__mmask64{1} << here) - 1;
    for (int c = 0; c < kPerReg; ++c) packed[c] = c < here ? static_cast<W>(qc[r * kPerReg + c]) : W{0};
    q[r] = _mm512_load_si512(packed);
  }
  int64_t m = 0;
  for (int64_t i0 = 0; i0 < n; i0 += 16) {
    const int keys_here = static_cast<int>(std::min<int64_t>(16, n - i0));
    uint32_t hit = 0;
    for (int k = 0; k < keys_here; ++k) {
      const W* kc = codes + (i0 + k) * tables;
      __mmask64 eq = 0;
      for (int r = 0; r < regs; ++r) eq |= codes_equal(lanes[r], kc + r * kPerReg, q[r]);
      hit |= static_cast<uint32_t>(eq != 0) << k;
    }
    m = append_hits(hit, i0, base, keys, m);
  }
  return m;
}

int64_t pig_collisions(const void* codes, int code_bytes, int64_t n, int tables, const uint64_t* qc, int32_t base,
                       int32_t* keys) {
  return with_code_word(codes, code_bytes, [&](const auto* words) { return pig_collisions_w(words, n, tables, qc, base, keys); });
}

}  // namespace

const SelectKernels& select_kernels_avx512() {
  static const SelectKernels k = [] {
    SelectKernels s{hamming32,      hamming64,    count_at_most, take_below, gather_nonzero,
                    quest_scores,   pig_collisions};
    if (!__builtin_cpu_supports("avx512vpopcntdq")) {
      s.hamming32 = select_kernels_scalar().hamming32;
      s.hamming64 = select_kernels_scalar().hamming64;
    }
    return s;
  }();
  return k;
}

}  // namespace hotswap::masked::detail

#pragma GCC diagnostic pop
#pragma GCC pop_options
