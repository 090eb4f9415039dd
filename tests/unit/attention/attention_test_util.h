// Test helpers shared by the CPU attention kernels' suites (attention/: the paged kernel;
// masked_kernel/: the sparse kernel, which adds this folder to its include path): a randomly
// filled paged KV cache whose unreadable slots hold NaN, the relative error their
// comparisons measure, and the ISAs to force one at a time.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "kernels/isa.h"
#include "kv_cache/kv_layout.h"
#include "kv_cache/paged_kv_view.h"

namespace hotswap::testing {

inline constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// One layer of a paged cache holding `context` positions in randomly permuted physical
// blocks. Every slot no query may read (spare blocks, slots after the context, released
// pages) holds NaN, so reading one poisons the output.
struct PagedFixture {
  int num_kv_heads, head_dim, block_size, context;
  std::vector<float> k, v;
  std::vector<int32_t> blocks;

  PagedFixture(int hkv, int d, int bs, int ctx, std::mt19937& rng)
      : num_kv_heads(hkv), head_dim(d), block_size(bs), context(ctx) {
    const int logical = (ctx + bs - 1) / bs;
    const int physical = logical + 3;  // spare blocks, never referenced
    const size_t n = static_cast<size_t>(physical) * hkv * bs * d;
    k.assign(n, kNaN);
    v.assign(n, kNaN);
    std::vector<int32_t> perm(static_cast<size_t>(physical));
    for (int i = 0; i < physical; ++i) perm[i] = i;
    std::shuffle(perm.begin(), perm.end(), rng);
    blocks.assign(perm.begin(), perm.begin() + logical);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const PagedKvView view = this->view();
    for (int p = 0; p < ctx; ++p) {
      for (int h = 0; h < hkv; ++h) {
        const size_t off = view.offset(p, h);
        for (int x = 0; x < d; ++x) {
          k[off + x] = normal(rng);
          v[off + x] = normal(rng);
        }
      }
    }
  }

  PagedKvView view() const {
    return PagedKvView{k.data(), v.data(), blocks.data(), static_cast<int>(blocks.size()), block_size, num_kv_heads,
                       head_dim};
  }

  // Releases pages [first_page, end_page) as KvCacheManager::release_invisible does: the
  // table entries become kNoBlock (and the pages' rows NaN).
  void release_pages(int first_page, int end_page) {
    const size_t page_floats = static_cast<size_t>(block_size) * head_dim;
    for (int i = first_page; i < end_page; ++i) {
      if (blocks[i] == kNoBlock) continue;
      const PagedKvView view = this->view();
      for (int h = 0; h < num_kv_heads; ++h) {
        const size_t off = view.offset(i * block_size, h);
        std::fill(k.begin() + off, k.begin() + off + page_floats, kNaN);
        std::fill(v.begin() + off, v.begin() + off + page_floats, kNaN);
      }
      blocks[i] = kNoBlock;
    }
  }
  void release_page(int i) { release_pages(i, i + 1); }
};

// The fixture's K and V as a bf16 cache holds them: each element rounded to nearest even
// (core/dtype.h; NaN stays NaN, so unreadable slots still poison). view() shares the fixture's
// block table; rounded_f32 rewrites the fixture's own floats to the same bf16 values, for
// references that take float32 input.
struct Bf16Kv {
  std::vector<uint16_t> k, v;

  explicit Bf16Kv(const PagedFixture& f) : k(f.k.size()), v(f.v.size()) {
    for (size_t i = 0; i < f.k.size(); ++i) k[i] = f32_to_bf16(f.k[i]), v[i] = f32_to_bf16(f.v[i]);
  }
  PagedKvView view(const PagedFixture& f) const {
    PagedKvView view = f.view();
    view.k = k.data();
    view.v = v.data();
    view.dtype = KvDtype::kBf16;
    return view;
  }
  void round_in_place(PagedFixture& f) const {
    for (size_t i = 0; i < k.size(); ++i) f.k[i] = bf16_to_f32(k[i]), f.v[i] = bf16_to_f32(v[i]);
  }
};

// The largest error any relative_error() call saw, for the tests to print.
inline double& worst_relative_error() {
  static double worst = 0;
  return worst;
}

// Max over rows of `d` floats of max|got - want| / max|want|; infinite when `got` has a
// non-finite value, or a row of `want` is zero and that row of `got` is not exactly zero.
inline double relative_error(const std::vector<float>& got, const std::vector<float>& want, int d) {
  double worst = 0;
  for (size_t row = 0; row < want.size() / d; ++row) {
    double diff = 0, scale = 0;
    for (int x = 0; x < d; ++x) {
      const size_t i = row * d + x;
      if (!std::isfinite(got[i])) return INFINITY;
      diff = std::max(diff, std::abs(static_cast<double>(got[i]) - want[i]));
      scale = std::max(scale, std::abs(static_cast<double>(want[i])));
    }
    if (scale == 0) {
      if (diff != 0) return INFINITY;
      continue;
    }
    worst = std::max(worst, diff / scale);
  }
  worst_relative_error() = std::max(worst_relative_error(), worst);
  return worst;
}

// Every ISA this CPU can run, scalar first.
inline std::vector<kernels::Isa> supported_isas() {
  std::vector<kernels::Isa> isas = {kernels::Isa::kScalar};
  if (kernels::best_supported_isa() >= kernels::Isa::kAvx2) isas.push_back(kernels::Isa::kAvx2);
  if (kernels::best_supported_isa() >= kernels::Isa::kAvx512) isas.push_back(kernels::Isa::kAvx512);
  return isas;
}

// Restores the active ISA a test changes.
class IsaRestorer {
 public:
  IsaRestorer() : saved_(kernels::active_isa()) {}
  ~IsaRestorer() { kernels::set_active_isa(saved_); }

 private:
  kernels::Isa saved_;
};

}  // namespace hotswap::testing
