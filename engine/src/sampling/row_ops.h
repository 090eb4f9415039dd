// Reductions and selections over one float32 logits row [vocab], shared by the logits
// processors, the Sampler and compute_logprobs. Written so that GCC/Clang vectorise the hot
// loops at -O2/-O3 without -ffast-math: fixed-width lane accumulators (or generic vectors)
// instead of scalar reductions, and a polynomial exp instead of libm calls. Every function is deterministic
// for a given build: same row in, same result out, independent of call history.
//
// Conventions: -inf marks a masked-out token and has probability 0. NaN is a model bug: it
// ranks as -inf wherever values are ordered (so sorts stay well-defined), and is otherwise
// not handled specially.
// Thread safety: pure functions; scratch is passed in by the caller.
#pragma once

#include <bit>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

namespace hotswap::sampling {

// exp(x) for x <= 88 (larger x is clamped to 88), relative error below 3e-7 (a few ulp);
// exactly 0 for x < -87.3 and for -inf, where float exp would underflow to a denormal
// anyway. Inline so row loops vectorise.
inline float fast_exp(float x) {
  constexpr float kMinArg = -87.3f;
  constexpr float kMaxArg = 88.0f;  // keeps 2^n finite
  constexpr float kLog2e = 1.44269504089f;
  constexpr float kLn2Hi = 0.693359375f;  // ln 2 split so n * kLn2Hi is exact
  constexpr float kLn2Lo = -2.12194440e-4f;
  constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const bool underflow = x < kMinArg;
  const float xc = x < kMinArg ? kMinArg : (x > kMaxArg ? kMaxArg : x);
  const float n = (xc * kLog2e + kRoundMagic) - kRoundMagic;  // round(x / ln 2)
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;           // |r| <= ln2 / 2
  // Cephes expf minimax polynomial for e^r on [-ln2/2, ln2/2].
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n
  const float result = p * std::bit_cast<float>(bits);
  return underflow ? 0.0f : result;
}

// The value used to order logits: NaN ranks as -inf, keeping comparators strict weak orders.
inline float rank_key(float x) { return x == x ? x : -std::numeric_limits<float>::infinity(); }

// Strict weak order "token a ranks before token b" in a row: higher rank_key, then lower
// index (a tie keeps the lower token id, as torch.argmax does).
struct RanksBefore {
  const float* row;
  bool operator()(int32_t a, int32_t b) const {
    const float va = rank_key(row[a]);
    const float vb = rank_key(row[b]);
    return va > vb || (va == vb && a < b);
  }
};

// Largest value in row; -inf for an empty or fully masked row.
float max_value(std::span<const float> row);

// The first index holding the maximum value (torch.argmax semantics), or -1 if no entry
// compares >= every other (empty row, or all NaN).
int32_t argmax_first(std::span<const float> row);

// sum_i exp(row[i] - shift), accumulated per 256-element block in float lanes and across
// blocks in double. shift is normally max_value(row), so every term is in [0, 1].
double sum_exp(std::span<const float> row, float shift);

// Per-block version of sum_exp: block_sums[b] = sum over row[b*kSumBlock, (b+1)*kSumBlock).
// Lets a caller find which block a cumulative mass falls into without a sequential scan.
inline constexpr int kSumBlock = 256;
void block_sum_exp(std::span<const float> row, float shift, std::vector<double>& block_sums);

// Indices of the k best entries in RanksBefore order (value descending, ties by index).
// Requires 0 <= k <= row.size(). out is overwritten; its capacity is reused.
void select_top(std::span<const float> row, int k, std::vector<int32_t>& out);

}  // namespace hotswap::sampling
