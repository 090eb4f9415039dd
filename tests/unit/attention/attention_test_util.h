// Test helpers shared by the CPU attention kernels' suites (attention/: the paged kernel;
// masked_kernel/: the sparse kernel, which adds this folder to its include path): a randomly
// filled paged KV cache whose unreadable slots hold NaN, the relative error their
// comparisons measure, and the ISAs to force one at a time.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "kernels/isa.h"
#include "kv_cache/kv_layout.h"
#include "kv_cache/kv_q8.h"
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
  // The same block table over other K/V arrays of `dtype` (Bf16Kv, Q8Kv below).
  PagedKvView view_of(const void* k_rows, const void* v_rows, KvDtype dtype) const {
    PagedKvView view = this->view();
    view.k = k_rows;
    view.v = v_rows;
    view.dtype = dtype;
    return view;
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
  PagedKvView view(const PagedFixture& f) const { return f.view_of(k.data(), v.data(), KvDtype::kBf16); }
  void round_in_place(PagedFixture& f) const {
    for (size_t i = 0; i < k.size(); ++i) f.k[i] = bf16_to_f32(k[i]), f.v[i] = bf16_to_f32(v[i]);
  }
};

// The fixture's K and V as a q8 cache holds them (kv_q8.h; head_dim % 32 == 0): every row
// quantised by the cache's own quantiser; a row holding NaN (unreadable) gets NaN scales, so
// reading it still poisons. view() shares the fixture's block table; dequantise_in_place
// rewrites the fixture's floats to the values the q8 rows read back as (NaN rows stay NaN).
struct Q8Kv {
  std::vector<int8_t> k, v;

  explicit Q8Kv(const PagedFixture& f) {
    const int d = f.head_dim;
    const size_t rows = f.k.size() / static_cast<size_t>(d), ru = kv_row_units(KvDtype::kQ8, d);
    k.assign(rows * ru, 0);
    v.assign(rows * ru, 0);
    for (size_t r = 0; r < rows; ++r) {
      quantize(&f.k[r * d], d, &k[r * ru]);
      quantize(&f.v[r * d], d, &v[r * ru]);
    }
  }
  PagedKvView view(const PagedFixture& f) const { return f.view_of(k.data(), v.data(), KvDtype::kQ8); }
  void dequantise_in_place(PagedFixture& f) const {
    const int d = f.head_dim;
    const size_t ru = kv_row_units(KvDtype::kQ8, d);
    for (size_t r = 0; r < f.k.size() / static_cast<size_t>(d); ++r) {
      dequantize_kv_row_q8(&k[r * ru], d, &f.k[r * d]);
      dequantize_kv_row_q8(&v[r * ru], d, &f.v[r * d]);
    }
  }

 private:
  static void quantize(const float* x, int d, int8_t* row) {
    if (std::none_of(x, x + d, [](float e) { return std::isnan(e); })) return quantize_kv_row_q8(x, d, row);
    for (int b = 0; b < d / kKvQ8Block; ++b) std::memcpy(row + d + b * sizeof(float), &kNaN, sizeof(float));
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
