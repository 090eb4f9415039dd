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

#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "kernels/cpu/vec_math.h"

namespace hotswap::sampling {

// exp(x) for x <= 88 (larger x is clamped to 88), relative error below 3e-7 (a few ulp);
// exactly 0 for x < -87.3 and for -inf, where float exp would underflow to a denormal
// anyway. Inline so row loops vectorise (kernels/cpu/vec_math.h's scalar exp).
inline float fast_exp(float x) {
  const float result = kernels::vec_math::exp_scalar(x);
  return x < kernels::vec_math::kScalarMinArg ? 0.0f : result;
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
