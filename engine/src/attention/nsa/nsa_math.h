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

#include <bit>
#include <cmath>
#include <cstdint>

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

// exp(x) for x <= 0, branch-free so loops over it vectorise (Cephes expf: range reduction
// by ln 2, degree-7 polynomial; within 2 ulp of expf). Below -87.3 (where expf reaches the
// float32 normal range's end) it returns about 1e-38 instead of a denormal or 0, which is
// below anything a softmax sum can notice.
inline float exp_nonpositive(float x) {
  x = x < -87.3f ? -87.3f : x;
  const float fx = x * 1.44269504088896341f;
  // Round to nearest integer: adding 1.5 * 2^23 leaves the integer part in the mantissa.
  const float n = (fx + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  const float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r2 + r + 1.0f;
  const int32_t e = (static_cast<int32_t>(n) + 127) << 23;
  return y * std::bit_cast<float>(e);
}

// In place: x[i] = exp(x[i] - max) / sum. n >= 1.
inline void softmax_inplace(float* __restrict x, int n) {
  float m = x[0];
  for (int i = 1; i < n; ++i) m = x[i] > m ? x[i] : m;
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

inline float sigmoid(float z) { return 1.0f / (1.0f + std::exp(-z)); }

}  // namespace hotswap::nsa_detail
