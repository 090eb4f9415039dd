// linear_q8(): argument checks, ISA dispatch, and one parallel region per call in which the
// threads first quantise their share of x's rows, then compute their share of W's panels.
#include <algorithm>

#include "core/check.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/q8_kernels.h"
#include "kernels/cpu/scratch.h"
#include "kernels/isa.h"
#include "kernels/q8.h"

namespace hotswap::kernels {
namespace detail {

bool cpu_has_avx512_vnni() {
  static const bool has = best_supported_isa() == Isa::kAvx512 && __builtin_cpu_supports("avx512vnni");
  return has;
}

}  // namespace detail

namespace {

const detail::Q8Kernels& q8_kernels_for(Isa isa) {
  if (isa == Isa::kAvx512 && detail::cpu_has_avx512_vnni()) return detail::avx512_q8_kernels();
  if (isa >= Isa::kAvx2) return detail::avx2_q8_kernels();
  return detail::scalar_q8_kernels();
}

size_t round_up64(size_t bytes) { return (bytes + 63) / 64 * 64; }

}  // namespace

void linear_q8(const float* x, int64_t m, const Q8Matrix& w, const float* bias, float* y) {
  HS_CHECK(m >= 0 && w.n >= 0 && w.k >= 0) << "linear_q8: m = " << m << ", W " << w.n << " x " << w.k;
  if (m == 0 || w.n == 0) return;
  HS_CHECK(y != nullptr) << "linear_q8: null y";
  if (w.k == 0) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < w.n; ++j) y[i * w.n + j] = bias ? bias[j] : 0.0f;
    return;
  }
  HS_CHECK(x != nullptr && w.qs != nullptr && w.scales != nullptr) << "linear_q8: null x or weights";

  const detail::Q8Kernels& kern = q8_kernels_for(active_isa());
  const int64_t blocks = q8_blocks(w.k);
  const size_t q_bytes = round_up64(static_cast<size_t>(m * blocks * kQ8Block));
  const size_t d_bytes = round_up64(static_cast<size_t>(m * blocks) * sizeof(float));
  auto* scratch = static_cast<uint8_t*>(
      detail::thread_scratch(detail::ScratchSlot::kLinearX, q_bytes + d_bytes + static_cast<size_t>(m * blocks) * 4));
  auto* xq = reinterpret_cast<int8_t*>(scratch);
  auto* xd = reinterpret_cast<float*>(scratch + q_bytes);
  auto* xsum = reinterpret_cast<int32_t*>(scratch + q_bytes + d_bytes);
  const detail::Q8Activations xa{xq, xd, xsum, blocks};
  const int64_t panels = q8_panels(w.n);
  detail::parallel_run(detail::thread_count(m * w.n * w.k), [&](int index, int count) {
    const detail::Range rows = detail::split(m, count, index, 1, m);
    if (rows.begin < rows.end) kern.quantize_x(x, w.k, rows.begin, rows.end, xq, xd, xsum);
    detail::barrier();  // every thread reads every row
    const detail::Range own = detail::split(panels, count, index, 1, panels);
    if (own.begin < own.end) kern.gemm(xa, m, w, bias, own.begin, own.end, y);
  });
}

const char* linear_q8_isa() {
  return q8_kernels_for(active_isa()).name;
}

}  // namespace hotswap::kernels
