// Internal to attention/nsa/: the float32 primitives every NSA computation is built from.
//
// Each has a fixed association order written in the source (16 lane-wise partial sums and a
// fixed pairwise tree), so its result depends only on its inputs, not on the call site, the
// vector width the compiler picks or the CPU: gcc vectorises the lane loops without
// -ffast-math. The serving kernel and the reference both compute scores, importance
// probabilities, block importance and compressed blocks with these functions, so they make
// bit-identical block selections (a selection is a discontinuous function of its inputs; a
// last-bit difference could otherwise flip a near tie).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/cpu/vec_math.h"

namespace hotswap::nsa_detail {

inline constexpr int kLanes = 16;

// Pairwise tree over the lanes: ((a0+a8)+(a4+a12))+... in a fixed order.
inline float reduce_lanes(float* acc) {
  for (int w = kLanes / 2; w > 0; w /= 2) {
    for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  }
  return acc[0];
}

// sum_i a[i] * b[i].
inline float dot(const float* __restrict a, const float* __restrict b, int n) {
  float acc[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] += a[i + j] * b[i + j];
  }
  for (int j = 0; i + j < n; ++j) acc[j] += a[i + j] * b[i + j];
  return reduce_lanes(acc);
}

// sum_i x[i], same association as dot().
inline float sum(const float* __restrict x, int n) {
  float acc[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] += x[i + j];
  }
  for (int j = 0; i + j < n; ++j) acc[j] += x[i + j];
  return reduce_lanes(acc);
}

// y[i] += a * x[i].
inline void axpy(float a, const float* __restrict x, float* __restrict y, int n) {
#pragma omp simd
  for (int i = 0; i < n; ++i) y[i] += a * x[i];
}

// sum_c a[c] * b[c] accumulated in order c = 0, 1, ...: the association of score_columns(),
// which the reference uses for the compressed-block scores that decide the selection.
inline float dot_sequential(const float* __restrict a, const float* __restrict b, int n) {
  float acc = 0.0f;
  for (int c = 0; c < n; ++c) acc += a[c] * b[c];
  return acc;
}

// max_i x[i], n >= 1 (exact, so the association does not matter).
inline float max_value(const float* __restrict x, int n) {
  float acc[kLanes];
  for (int j = 0; j < kLanes; ++j) acc[j] = x[0];
  int i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
  }
  for (int j = 0; i + j < n; ++j) acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
  for (int w = kLanes / 2; w > 0; w /= 2) {
    for (int j = 0; j < w; ++j) acc[j] = acc[j + w] > acc[j] ? acc[j + w] : acc[j];
  }
  return acc[0];
}

// exp(x) for x <= 0, branch-free so loops over it vectorise: kernels/cpu/vec_math.h's scalar
// exp (Cephes expf: range reduction by ln 2, e^r ≈ 1 + r + r²·P(r); within 2 ulp of expf) with
// its own last step, P·(r·r) where exp_scalar has (P·r)·r: the two differ in the last bit for
// about 1 input in 2000, and NSA's results were made with this one.
// Below -87.3 (where expf reaches the float32 normal range's end) it returns about 1e-38
// instead of a denormal or 0, which is below anything a softmax sum can notice.
inline float exp_nonpositive(float x) {
  namespace vm = kernels::vec_math;
  x = x < vm::kScalarMinArg ? vm::kScalarMinArg : x;
  const vm::ExpReduced red = vm::exp_reduce_scalar(x);
  const float r = red.r;
  const float y = vm::exp_poly_scalar(r) * (r * r) + r + 1.0f;
  return y * vm::exp2_int_scalar(red.n);
}

// In place: x[i] = exp(x[i] - max) / sum. n >= 1.
inline void softmax_inplace(float* __restrict x, int n) {
  const float m = max_value(x, n);
#pragma omp simd
  for (int i = 0; i < n; ++i) x[i] = exp_nonpositive(x[i] - m);
  const float inv = 1.0f / sum(x, n);
#pragma omp simd
  for (int i = 0; i < n; ++i) x[i] *= inv;
}

// out[a * out_stride + r] = scale * q[a] . keys[r] for the `group` query heads of one KV
// head and `n` contiguous key rows of `d` floats. Each key row is loaded once for the group.
inline void score_rows(const float* const* q, int group, const float* keys, int n, int d, float scale, float* out,
                       int out_stride) {
  for (int r = 0; r < n; ++r) {
    const float* k = keys + static_cast<int64_t>(r) * d;
    for (int a = 0; a < group; ++a) out[static_cast<int64_t>(a) * out_stride + r] = dot(q[a], k, d) * scale;
  }
}

// Scores against keys stored transposed, [d, E] (column e is one key): out[a * out_stride + e]
// = scale * dot_sequential(q[a], key e) for e < n <= E <= kMaxColumns. Vectorised over the
// keys, so no horizontal sums; each query head reads the [d, n] block from L1.
inline constexpr int kMaxColumns = 256;
inline void score_columns(const float* const* q, int group, const float* kt, int E, int n, int d, float scale,
                          float* out, int out_stride) {
  float acc[kMaxColumns];
  for (int a = 0; a < group; ++a) {
    for (int e = 0; e < n; ++e) acc[e] = 0.0f;
    const float* qa = q[a];
    for (int c = 0; c < d; ++c) {
      const float qc = qa[c];
      const float* row = kt + static_cast<int64_t>(c) * E;
#pragma omp simd
      for (int e = 0; e < n; ++e) acc[e] += qc * row[e];
    }
    float* o = out + static_cast<int64_t>(a) * out_stride;
    for (int e = 0; e < n; ++e) o[e] = acc[e] * scale;
  }
}

// acc[a * d + c] += sum_e w[a * w_stride + e] * v[e * d + c] for the `group` heads of one KV
// head and `n` value rows of `d` floats. With d a multiple of kLanes, four heads at a time
// keep their sums in registers (four independent FMA chains per value load) instead of
// reading and writing acc per row; otherwise one axpy per row and head.
inline void accumulate_rows(const float* w, int64_t w_stride, int group, const float* v, int n, int d, float* acc) {
  int a0 = 0;
  if (d % kLanes == 0) {
    for (; a0 + 4 <= group; a0 += 4) {
      const float* w0 = w + a0 * w_stride;
      const float* w1 = w0 + w_stride;
      const float* w2 = w1 + w_stride;
      const float* w3 = w2 + w_stride;
      for (int c0 = 0; c0 < d; c0 += kLanes) {
        float r0[kLanes] = {}, r1[kLanes] = {}, r2[kLanes] = {}, r3[kLanes] = {};
        for (int e = 0; e < n; ++e) {
          const float* row = v + static_cast<int64_t>(e) * d + c0;
          const float x0 = w0[e], x1 = w1[e], x2 = w2[e], x3 = w3[e];
          for (int j = 0; j < kLanes; ++j) {
            r0[j] += x0 * row[j];
            r1[j] += x1 * row[j];
            r2[j] += x2 * row[j];
            r3[j] += x3 * row[j];
          }
        }
        float* o = acc + static_cast<int64_t>(a0) * d + c0;
        for (int j = 0; j < kLanes; ++j) {
          o[j] += r0[j];
          o[d + j] += r1[j];
          o[2 * d + j] += r2[j];
          o[3 * d + j] += r3[j];
        }
      }
    }
  }
  for (; a0 < group; ++a0) {
    for (int e = 0; e < n; ++e) axpy(w[a0 * w_stride + e], v + static_cast<int64_t>(e) * d, acc + static_cast<int64_t>(a0) * d, d);
  }
}

inline float sigmoid(float z) { return 1.0f / (1.0f + std::exp(-z)); }

}  // namespace hotswap::nsa_detail
