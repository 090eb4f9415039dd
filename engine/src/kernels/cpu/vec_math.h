// The one exp approximation of the CPU code, in scalar, AVX2 and AVX-512 form: Cephes' expf
// (clamp the argument, n = round(x / ln 2), Cody-Waite reduction r = x - n·ln 2 with ln 2
// split in two, e^r ≈ 1 + r + r²·P(r) with P the degree-5 minimax polynomial on
// [-ln2/2, ln2/2], then scale by 2^n); about 1 ulp on its range. Users: silu_mul (kernels/),
// the attention kernels' softmax (attention/simd, attention/nsa), the sampling row ops.
//
// ISA: the AVX2 and AVX-512 functions carry their own target attribute (the smallest feature
// set their intrinsics need), so this header may be included anywhere, before or after a
// `#pragma GCC target`, and the library still builds with -DHOTSWAP_NATIVE=OFF. They are
// always-inline templates: nothing is emitted unless a function of a matching or larger
// target calls them (callers reach that code only after kernels::active_isa() said the CPU has
// it), and an AVX2 file that includes this header emits no AVX-512 code. The scalar pieces
// have no target attribute: they compile for the file's own baseline.
//
// The scalar form differs from the vector ones in its last bits (it rounds n with the
// 1.5·2^23 trick and leaves fusing multiply-adds to the compiler, so loops over it vectorise
// at any baseline), and each caller keeps its own clamp: every user computes exactly what its
// own copy did before this header existed.
#pragma once

#include <immintrin.h>

#include <bit>
#include <cstdint>

#define HS_VEC_MATH_AVX512 __attribute__((target("avx512f"), always_inline))
#define HS_VEC_MATH_AVX2 __attribute__((target("avx2,fma"), always_inline))

namespace hotswap::kernels::vec_math {

// Cephes expf constants. ln 2 = kLn2Hi + kLn2Lo, kLn2Hi with few enough mantissa bits that
// n · kLn2Hi is exact for |n| <= 128.
inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693359375f;
inline constexpr float kLn2Lo = -2.12194440e-4f;
inline constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f,
                       kP3 = 4.1665795894e-2f, kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;

// Where the vector forms clamp their argument.
enum class ExpClamp : uint8_t {
  // ±88.376 (127.5 ln 2): n in [-127, 127], results from about 4e-39 (a denormal) to
  // 2.4e38, where expf would go on to 0 and +inf (silu_mul).
  kExpf,
  // [ln FLT_MIN, 88] = [-87.337, 88]: n stays in [-126, 127], so 2^n is a normal float; below
  // ln FLT_MIN the result stays about 1.2e-38 instead of going towards 0, which is below every
  // softmax weight that matters (the attention kernels map -inf to 0 themselves).
  kNormal,
};

template <ExpClamp C>
inline constexpr float kExpMinArg = C == ExpClamp::kExpf ? -88.3762626647949f : -87.33654f;
template <ExpClamp C>
inline constexpr float kExpMaxArg = C == ExpClamp::kExpf ? 88.3762626647949f : 88.0f;

// ---- AVX-512: 2^n by vscalefps, which takes any n.
template <ExpClamp C>
HS_VEC_MATH_AVX512 inline __m512 exp_avx512(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(kExpMinArg<C>));
  x = _mm512_min_ps(x, _mm512_set1_ps(kExpMaxArg<C>));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kP0);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP5));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// ---- AVX2: 2^n built in the exponent bits. Under kNormal n is in [-126, 127] and one factor
// does; under kExpf n may be -127, whose 2^n is not a normal float, so it is split in two
// factors that are.
template <ExpClamp C>
HS_VEC_MATH_AVX2 inline __m256 exp_avx2(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(kExpMinArg<C>));
  x = _mm256_min_ps(x, _mm256_set1_ps(kExpMaxArg<C>));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kP0);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP5));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i ni = _mm256_cvtps_epi32(n);
  if constexpr (C == ExpClamp::kNormal) {
    const __m256i pow2 = _mm256_slli_epi32(_mm256_add_epi32(ni, _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(pow2));
  } else {
    const __m256i half = _mm256_srai_epi32(ni, 1);
    const __m256 s1 =
        _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, _mm256_set1_epi32(127)), 23));
    const __m256 s2 = _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half), _mm256_set1_epi32(127)), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
  }
}

// ---- Scalar, branch-free so loops over it vectorise without -ffast-math.

// Clamp of exp_scalar: n stays in [-126, 127]. Below kScalarMinArg exp_scalar returns
// exp(kScalarMinArg), about 1.2e-38; callers that need 0 there test for it (fast_exp).
inline constexpr float kScalarMinArg = -87.3f;
inline constexpr float kScalarMaxArg = 88.0f;

// n = round(x / ln 2) (ties to even, for |x| < 2^22 ln 2) and r = x - n ln 2, |r| <= ln2 / 2.
struct ExpReduced {
  float n;
  float r;
};
inline ExpReduced exp_reduce_scalar(float x) {
  constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float n = (x * kLog2e + kRoundMagic) - kRoundMagic;
  return {n, (x - n * kLn2Hi) - n * kLn2Lo};
}

// P(r), the Horner part of e^r ≈ 1 + r + r² P(r).
inline float exp_poly_scalar(float r) {
  float p = kP0;
  p = p * r + kP1;
  p = p * r + kP2;
  p = p * r + kP3;
  p = p * r + kP4;
  p = p * r + kP5;
  return p;
}

// 2^n for an integral n in [-126, 127].
inline float exp2_int_scalar(float n) {
  return std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
}

// exp(x) on [kScalarMinArg, kScalarMaxArg]; x outside is clamped to it.
inline float exp_scalar(float x) {
  const float xc = x < kScalarMinArg ? kScalarMinArg : (x > kScalarMaxArg ? kScalarMaxArg : x);
  const ExpReduced red = exp_reduce_scalar(xc);
  const float r = red.r;
  return (exp_poly_scalar(r) * r * r + r + 1.0f) * exp2_int_scalar(red.n);
}

}  // namespace hotswap::kernels::vec_math

#undef HS_VEC_MATH_AVX512
#undef HS_VEC_MATH_AVX2
