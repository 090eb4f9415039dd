// linear() and linear_bf16_packed(): argument checks, ISA dispatch, form choice (dot vs
// packed, AMX) and the OpenMP split of output columns. The per-ISA arithmetic lives in linear_{avx512,avx2,scalar}.cc.
#include "kernels/linear.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "core/check.h"
#include "kernels/bf16_packed.h"
#include "kernels/cpu/bf16_pairs.h"
#include "kernels/cpu/linear_kernels.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/scratch.h"
#include "kernels/isa.h"

namespace hotswap::kernels {
namespace {

using detail::barrier;
using detail::LinearKernels;
using detail::parallel_run;
using detail::Range;
using detail::ScratchSlot;
using detail::split;
using detail::thread_count;
using detail::WeightMatrix;

// From this many rows of x the packed form beats the dot form (see bench/kernels_bench.cc).
constexpr int64_t kMinPackedRows = 8;
// Dot-form column ranges are multiples of this, so threads split whole GEMV tiles.
constexpr int64_t kDotColumnUnit = 8;

std::atomic<LinearPrecision> g_precision{LinearPrecision::kF32};

const LinearKernels& kernels_for(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return detail::avx512_linear_kernels();
    case Isa::kAvx2:
      return detail::avx2_linear_kernels();
    case Isa::kScalar:
      break;
  }
  return detail::scalar_linear_kernels();
}

void run_dot_form(const LinearKernels& kern, const float* x, int64_t m, const WeightMatrix& w,
                  const float* bias, float* y, int threads) {
  const int64_t stride = kern.dot_x_stride(w.k);
  float* xd = detail::thread_scratch_as<float>(ScratchSlot::kLinearX, static_cast<size_t>(m * stride));
  kern.prepare_dot_x(x, m, w.k, w.dtype, xd);
  const int64_t units = (w.n + kDotColumnUnit - 1) / kDotColumnUnit;
  parallel_run(threads, [&](int index, int count) {
    const Range cols = split(units, count, index, kDotColumnUnit, w.n);
    if (cols.begin < cols.end) kern.dot_rows(xd, m, w, bias, cols.begin, cols.end, y);
  });
}

// Packs x one chunk of rows at a time (bounding scratch memory and keeping the per-thread
// y^T chunk in L2); W is re-read per chunk, which is cheap next to the arithmetic.
void run_packed_form(const LinearKernels& kern, const float* x, int64_t m, const WeightMatrix& w,
                     const float* bias, float* y, int threads) {
  constexpr int64_t kRowChunk = 512;
  const int64_t panel_rows = kern.gemm_panel_rows, tile = kern.gemm_tile_cols;
  const int64_t max_panels = (std::min(m, kRowChunk) + panel_rows - 1) / panel_rows;
  float* xp = detail::thread_scratch_as<float>(ScratchSlot::kLinearX,
                                               static_cast<size_t>(max_panels * panel_rows * w.k));
  const int64_t tiles = (w.n + tile - 1) / tile;
  parallel_run(threads, [&](int index, int count) {
    const Range cols = split(tiles, count, index, tile, w.n);
    for (int64_t i0 = 0; i0 < m; i0 += kRowChunk) {
      const int64_t mc = std::min(kRowChunk, m - i0);
      const int64_t panels = (mc + panel_rows - 1) / panel_rows;
      const Range own_panels = split(panels, count, index, 1, panels);
      kern.pack_gemm_x(x + i0 * w.k, mc, w.k, own_panels.begin, own_panels.end, xp);
      barrier();  // every thread reads every panel
      if (cols.begin < cols.end) kern.gemm_cols(xp, mc, w, bias, cols.begin, cols.end, y + i0 * w.n);
      barrier();  // before the next chunk overwrites xp
    }
  });
}

// The bf16-product forms from kBf16DotMinRows rows: x is rounded to bf16 one chunk of rows at
// a time (rows split over the threads; for AMX, beyond one row block, in tile order with zero
// rows to whole blocks: cpu/bf16_pairs.h), then sweep(xb, rows, first_row, index, count)
// computes the thread's columns for every row of the chunk.
template <typename Sweep>
void run_bf16_chunks(const LinearKernels& kern, const float* x, int64_t m, int64_t k, bool amx_rows, int threads,
                     const Sweep& sweep) {
  constexpr int64_t kRowChunk = 512;
  const int64_t stride = kern.bf16_x_stride(k);
  const auto tile_order = [amx_rows](int64_t rows) { return amx_rows && detail::amx_x_in_tile_order(rows); };
  const auto padded_rows = [&](int64_t rows) {
    return tile_order(rows) ? (rows + detail::kAmxRowBlock - 1) / detail::kAmxRowBlock * detail::kAmxRowBlock : rows;
  };
  auto* xb = detail::thread_scratch_as<uint16_t>(ScratchSlot::kLinearX,
                                                 static_cast<size_t>(padded_rows(std::min(m, kRowChunk)) * stride));
  parallel_run(threads, [&](int index, int count) {
    for (int64_t i0 = 0; i0 < m; i0 += kRowChunk) {
      const int64_t mc = std::min(kRowChunk, m - i0), padded = padded_rows(mc);
      const Range rows = split(padded, count, index, 1, padded);
      if (rows.begin < rows.end) {
        if (tile_order(mc))
          detail::amx_pack_x(x + i0 * k, mc, k, rows.begin, rows.end, xb);
        else
          kern.pack_x_bf16(x + i0 * k, k, rows.begin, rows.end, xb);
      }
      barrier();  // every thread reads every row
      sweep(xb, mc, i0, index, count);
      if (i0 + kRowChunk < m) barrier();  // before the next chunk overwrites xb
    }
  });
}

void run_bf16_dot_form(const LinearKernels& kern, const float* x, int64_t m, const WeightMatrix& w,
                       const float* bias, float* y, int threads) {
  const int64_t tile = kern.bf16_tile_cols, tiles = (w.n + tile - 1) / tile;
  // The same bits either way (isa.h); only the AVX-512 table has a bf16 form at all.
  const bool fma = bf16_gemm_form() == Bf16GemmForm::kFma;
  run_bf16_chunks(kern, x, m, w.k, /*amx_rows=*/false, threads,
                  [&](const uint16_t* xb, int64_t mc, int64_t i0, int index, int count) {
                    const Range cols = split(tiles, count, index, tile, w.n);
                    if (cols.begin >= cols.end) return;
                    if (fma && mc >= detail::kBf16FmaMinRows)
                      detail::avx512_gemm_cols_bf16_fma(xb, mc, w, bias, cols.begin, cols.end, y + i0 * w.n);
                    else
                      kern.gemm_cols_bf16(xb, mc, w, bias, cols.begin, cols.end, y + i0 * w.n);
                  });
}

void run_amx_form(const float* x, int64_t m, const WeightMatrix& w, const float* bias, float* y, int threads) {
  const int64_t tiles = (w.n + detail::kBf16TileCols - 1) / detail::kBf16TileCols;
  run_bf16_chunks(detail::avx512_linear_kernels(), x, m, w.k, /*amx_rows=*/true, threads, [&](const uint16_t* xb, int64_t mc, int64_t i0, int index, int count) {
    const Range cols = split(tiles, count, index, detail::kBf16TileCols, w.n);
    if (cols.begin < cols.end) detail::amx_gemm_cols_bf16(xb, mc, w, bias, cols.begin, cols.end, y + i0 * w.n);
  });
}

// kBf16Dot below kBf16DotMinRows rows: x rounded to bf16 once, W streamed row after row.
void run_bf16_gemv_form(const LinearKernels& kern, const float* x, int64_t m, const WeightMatrix& w,
                        const float* bias, float* y, int threads) {
  const int64_t stride = kern.bf16_x_stride(w.k);
  auto* xb = detail::thread_scratch_as<uint16_t>(ScratchSlot::kLinearX, static_cast<size_t>(m * stride));
  kern.pack_x_bf16(x, w.k, 0, m, xb);
  const int64_t units = (w.n + kDotColumnUnit - 1) / kDotColumnUnit;
  parallel_run(threads, [&](int index, int count) {
    const Range cols = split(units, count, index, kDotColumnUnit, w.n);
    if (cols.begin < cols.end) kern.gemv_bf16(xb, m, w, bias, cols.begin, cols.end, y);
  });
}

// kBf16Dot applies to this weight on this CPU, at any m: the bf16 form from
// kBf16DotMinRows rows, the bf16 GEMV below (both multiply the same bf16-rounded x).
bool bf16_products(const LinearKernels& kern, const WeightMatrix& w) {
  return kern.gemm_cols_bf16 != nullptr && kern.gemv_bf16 != nullptr && cpu_has_avx512_bf16() &&
         w.dtype == DType::kBF16 &&
         g_precision.load(std::memory_order_relaxed) == LinearPrecision::kBf16Dot;
}

}  // namespace

void linear(const float* x, int64_t m, const TensorView& w, const float* bias, float* y) {
  HS_CHECK(w.shape.size() == 2) << "linear weight must be 2-D, got " << shape_string(w.shape);
  HS_CHECK(w.dtype == DType::kF32 || w.dtype == DType::kBF16 || w.dtype == DType::kF16)
      << "linear weight dtype " << dtype_name(w.dtype) << " unsupported (F32, BF16, F16)";
  HS_CHECK(m >= 0) << "linear: m = " << m;
  const WeightMatrix wm{w.dtype, w.data, w.shape[0], w.shape[1]};
  if (m == 0 || wm.n == 0) return;
  HS_CHECK(y != nullptr) << "linear: null y";
  if (wm.k == 0) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < wm.n; ++j) y[i * wm.n + j] = bias ? bias[j] : 0.0f;
    return;
  }
  HS_CHECK(x != nullptr && w.data != nullptr)
      << "linear: null x or weight data, weight " << shape_string(w.shape);

  const LinearKernels& kern = kernels_for(active_isa());
  const int threads = thread_count(m * wm.n * wm.k);
  if (bf16_products(kern, wm)) {
    if (m >= kBf16DotMinRows && amx_enabled()) return run_amx_form(x, m, wm, bias, y, threads);
    if (m >= kBf16DotMinRows) return run_bf16_dot_form(kern, x, m, wm, bias, y, threads);
    return run_bf16_gemv_form(kern, x, m, wm, bias, y, threads);
  }
  if (kern.gemm_cols != nullptr && m >= kMinPackedRows) return run_packed_form(kern, x, m, wm, bias, y, threads);
  run_dot_form(kern, x, m, wm, bias, y, threads);
}

bool bf16_packed_applies() {
  return amx_enabled() && g_precision.load(std::memory_order_relaxed) == LinearPrecision::kBf16Dot;
}

void linear_bf16_packed(const float* x, int64_t m, const Bf16Packed& w, const float* bias, float* y) {
  HS_CHECK(bf16_packed_applies()) << "linear_bf16_packed needs kBf16Dot and AMX";
  HS_CHECK(m >= 0 && !w.empty()) << "linear_bf16_packed: m = " << m;
  if (m == 0) return;
  run_bf16_chunks(detail::avx512_linear_kernels(), x, m, w.k, /*amx_rows=*/true, thread_count(m * w.n * w.k),
                  [&](const uint16_t* xb, int64_t mc, int64_t i0, int index, int count) {
                    detail::amx_packed_share(xb, mc, w, bias, y + i0 * w.n, index, count);
                  });
}

const char* linear_isa() {
  const Isa isa = active_isa();
  if (isa == Isa::kAvx512 && cpu_has_avx512_bf16() && kernels_for(isa).gemm_cols_bf16 != nullptr &&
      linear_precision() == LinearPrecision::kBf16Dot)
    return amx_enabled() ? "avx512_amx" : bf16_gemm_form() == Bf16GemmForm::kFma ? "avx512_bf16_fma" : "avx512_bf16";
  return isa_name(isa);
}

void set_linear_precision(LinearPrecision precision) {
  g_precision.store(precision, std::memory_order_relaxed);
}

LinearPrecision linear_precision() {
  return g_precision.load(std::memory_order_relaxed);
}

}  // namespace hotswap::kernels
