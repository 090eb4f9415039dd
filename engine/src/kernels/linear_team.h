// linear() for decode-sized steps, computed by the threads of a parallel region the caller
// has opened (kernels/team.h), so that several projections share one fork/join (issue 16).
//
// Every thread of the region calls linear_team(x, m, W, bias, y, index, count) with its index;
// the thread computes its share of y's columns with the kernels and the column split linear()
// would use on `count` threads, so y is bitwise linear()'s. x must be complete before any
// thread calls it (each thread reads all of it), and y is complete only after a barrier. Work
// below linear()'s parallel threshold is done by thread 0 alone, as linear() would.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "kernels/bf16_packed.h"

namespace hotswap::kernels {

// Whether linear_team applies: m below kBf16DotMinRows (linear()'s dot and GEMV forms, which
// share nothing between threads) and a 2-D F32/BF16/F16 weight with k > 0.
bool linear_team_applies(int64_t m, const TensorView& w);

void linear_team(const float* x, int64_t m, const TensorView& w, const float* bias, float* y, int index, int count);

// The same for W packed for AMX (kernels/bf16_packed.h; needs bf16_packed_applies()): the
// thread's share of linear_bf16_packed's column tiles, bitwise its y, for m up to
// kBf16PackedTeamMaxRows (one row block of tiles: the batched decode steps of a busy server).
inline constexpr int64_t kBf16PackedTeamMaxRows = 16;
void linear_bf16_packed_team(const float* x, int64_t m, const Bf16Packed& w, const float* bias, float* y, int index,
                             int count);

}  // namespace hotswap::kernels
