// Dense projections: y[m, n] = x[m, k] · W[n, k]^T (+ bias[n]).
// W is stored as F32, BF16 or F16 ([out_features, in_features], as in PyTorch) and is read
// in its stored precision; accumulation is float32. The CPU ISA (AVX-512 / AVX2 / scalar)
// is chosen once at run time (kernels/isa.h).
//
// Contract: x is [m, k] and y is [m, n], both row-major float32 and not overlapping; bias is
// [n] or null. W's data may have any 2-byte alignment (BF16/F16 inside a safetensors file).
// linear() runs on omp_get_max_threads() threads when the work is large enough; it may be
// called from several threads at once. Its scratch memory is thread-local and kept at the
// largest size used: about 4·min(m, 512)·k bytes on the calling thread, <= 1 MiB per worker
// for k <= 8192 (256·k bytes with AMX).
// With kBf16Dot, a given row of x gives bitwise the same row of y whatever other rows share
// the call (for m >= kBf16DotMinRows).
//
// Accuracy (default LinearPrecision::kF32): every product is x·w in float32 with w widened
// exactly, so |y - linear_reference| <= 1e-5 · (sum_c |x[c]·w[c]| + |bias|) per element.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace hotswap::kernels {

void linear(const float* x, int64_t m, const TensorView& w, const float* bias, float* y);

// Scalar, obviously correct: the oracle the fast path is tested against.
void linear_reference(const float* x, int64_t m, const TensorView& w, const float* bias, float* y);

// Name of the implementation linear() dispatches to ("avx512_amx", "avx512_bf16",
// "avx512_bf16_fma", "avx512", "avx2", "scalar"). "avx512_bf16" means LinearPrecision::kBf16Dot
// is on and the CPU has vdpbf16ps; "avx512_bf16_fma" that, with the blocked form's pairs in
// float32 FMAs (isa.h, Bf16GemmForm); "avx512_amx" that, and from kBf16DotMinRows rows AMX
// tiles (amx_enabled()).
const char* linear_isa();

enum class LinearPrecision : uint8_t {
  // Exact float32 products of widened weights (the default; the bound above).
  kF32,
  // For BF16 weights on CPUs with AVX512_BF16: x is rounded to bf16 (nearest even), as
  // PyTorch and llama.cpp compute a bf16 model, and pairs are multiplied with vdpbf16ps: from
  // kBf16DotMinRows rows in the blocked bf16 form (about 2x the arithmetic rate; with AMX,
  // amx_enabled(), in tile registers instead, over 10x), below it in a GEMV that streams W row
  // after row. The products are the same either way; only the float32 summation order
  // differs. x's rounding costs accuracy:
  // |y - linear_reference| <= 2^-8 · sum_c |x[c]·w[c]| (typically ~1e-3 relative). F32/F16
  // weights and CPUs without AVX512_BF16 keep the kF32 path.
  kBf16Dot,
};
// From 8 rows the bf16 form beats the float32 one by ~2.5x (bench/kernels_bench.cc); below,
// the dot form is bound by reading W once and stays.
inline constexpr int64_t kBf16DotMinRows = 8;

// Process-wide; set at start-up (e.g. from the engine config), not while linear() runs.
void set_linear_precision(LinearPrecision precision);
LinearPrecision linear_precision();

}  // namespace hotswap::kernels
