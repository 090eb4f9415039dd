// linear_team(): linear()'s dot and bf16 GEMV forms (cpu/linear.cc) on one thread's columns.
// The form choice and the column split below mirror linear()'s for m < kBf16DotMinRows; the
// kernels tests check the results bitwise against linear() on every ISA.
#include "kernels/linear_team.h"

#include "core/check.h"
#include "kernels/cpu/bf16_pairs.h"
#include "kernels/cpu/linear_kernels.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/scratch.h"
#include "kernels/isa.h"
#include "kernels/linear.h"

namespace hotswap::kernels {
namespace {

// linear.cc's kDotColumnUnit: thread column ranges are multiples of this.
constexpr int64_t kColumnUnit = 8;

const detail::LinearKernels& active_kernels() {
  const Isa isa = active_isa();
  return isa == Isa::kAvx512 ? detail::avx512_linear_kernels()
         : isa == Isa::kAvx2 ? detail::avx2_linear_kernels()
                             : detail::scalar_linear_kernels();
}

}  // namespace

bool linear_team_applies(int64_t m, const TensorView& w) {
  return m > 0 && m < kBf16DotMinRows && w.shape.size() == 2 && w.shape[1] > 0 &&
         (w.dtype == DType::kF32 || w.dtype == DType::kBF16 || w.dtype == DType::kF16);
}

void linear_team(const float* x, int64_t m, const TensorView& w, const float* bias, float* y, int index, int count) {
  HS_CHECK(linear_team_applies(m, w)) << "linear_team: m " << m << ", weight " << shape_string(w.shape);
  const detail::WeightMatrix wm{w.dtype, w.data, w.shape[0], w.shape[1]};
  const int share = detail::thread_count(m * wm.n * wm.k) > 1 ? count : 1;
  if (index >= share || wm.n == 0) return;
  const detail::Range cols = detail::split((wm.n + kColumnUnit - 1) / kColumnUnit, share, index, kColumnUnit, wm.n);
  if (cols.begin >= cols.end) return;
  const detail::LinearKernels& kern = active_kernels();
  // Each thread prepares its own copy of x (thread-local scratch): m * k values, cheap next
  // to its share of W.
  if (kern.gemm_cols_bf16 != nullptr && kern.gemv_bf16 != nullptr && cpu_has_avx512_bf16() &&
      wm.dtype == DType::kBF16 && linear_precision() == LinearPrecision::kBf16Dot) {
    auto* xb = detail::thread_scratch_as<uint16_t>(detail::ScratchSlot::kLinearX,
                                                   static_cast<size_t>(m * kern.bf16_x_stride(wm.k)));
    kern.pack_x_bf16(x, wm.k, 0, m, xb);
    kern.gemv_bf16(xb, m, wm, bias, cols.begin, cols.end, y);
    return;
  }
  float* xd = detail::thread_scratch_as<float>(detail::ScratchSlot::kLinearX,
                                               static_cast<size_t>(m * kern.dot_x_stride(wm.k)));
  kern.prepare_dot_x(x, m, wm.k, wm.dtype, xd);
  kern.dot_rows(xd, m, wm, bias, cols.begin, cols.end, y);
}

void linear_bf16_packed_team(const float* x, int64_t m, const Bf16Packed& w, const float* bias, float* y, int index,
                             int count) {
  HS_CHECK(bf16_packed_applies() && m > 0 && m <= kBf16PackedTeamMaxRows && !w.empty())
      << "linear_bf16_packed_team: m " << m;
  const int share = detail::thread_count(m * w.n * w.k) > 1 ? count : 1;
  if (index >= share) return;
  const detail::LinearKernels& kern = detail::avx512_linear_kernels();
  auto* xb = detail::thread_scratch_as<uint16_t>(detail::ScratchSlot::kLinearX,
                                                 static_cast<size_t>(m * kern.bf16_x_stride(w.k)));
  static_assert(!detail::amx_x_in_tile_order(kBf16PackedTeamMaxRows), "the team form packs x row-major");
  kern.pack_x_bf16(x, w.k, 0, m, xb);  // row-major, as linear_bf16_packed's at these rows
  detail::amx_packed_share(xb, m, w, bias, y, index, share);
}

}  // namespace hotswap::kernels
