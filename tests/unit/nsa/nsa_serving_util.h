// The NSA suites' serving fixture: one layer of one sequence with random q/k/v, a paged KV
// cache (float32, or bf16 as engine.kv_cache_dtype = bf16 stores it) to serve it from, and
// serve(), which runs nsa_attend chunk by chunk as the forward pass does.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "adapters/model_shape.h"
#include "attention/layer_attention.h"
#include "attention/nsa/nsa_attention.h"
#include "attention/nsa/nsa_reference.h"
#include "core/dtype.h"
#include "kv_cache/kv_storage.h"

namespace hotswap::testing {


struct RawSequence {
  ModelShape m;
  int T = 0;
  std::vector<float> q, qu, k, ku, v, x;  // [T, H, d] x2, [T, Hkv, d] x3, [T, D]

  NsaReferenceInputs inputs(int num_tokens = -1) const {
    NsaReferenceInputs in;
    in.num_tokens = num_tokens < 0 ? T : num_tokens;
    in.num_heads = m.num_heads;
    in.num_kv_heads = m.num_kv_heads;
    in.head_dim = m.head_dim;
    in.hidden_size = m.hidden_size;
    in.scale = 1.0f / std::sqrt(static_cast<float>(m.head_dim));
    in.q = q.data();
    in.q_unrotated = qu.data();
    in.k = k.data();
    in.k_unrotated = ku.data();
    in.v = v.data();
    in.x = x.data();
    return in;
  }
};

inline RawSequence random_sequence(const ModelShape& m, int T, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  RawSequence s;
  s.m = m;
  s.T = T;
  auto fill = [&](std::vector<float>& v, size_t n) {
    v.resize(n);
    for (float& f : v) f = dist(rng);
  };
  const size_t qn = static_cast<size_t>(T) * m.num_heads * m.head_dim, kn = static_cast<size_t>(T) * m.num_kv_heads * m.head_dim;
  fill(s.q, qn);
  fill(s.qu, qn);
  fill(s.k, kn);
  fill(s.ku, kn);
  fill(s.v, kn);
  fill(s.x, static_cast<size_t>(T) * m.hidden_size);
  return s;
}

// A paged KV cache for one sequence whose logical blocks map to shuffled physical blocks.
// Slots not yet written hold NaN (as bf16 too; as q8 NaN scales), so reading a key after the
// query poisons the output. Rows are written through the engine's store_kv_row, as
// Model::forward writes them (bf16 rounded to nearest even, q8 quantised).
class PagedKv {
 public:
  PagedKv(int capacity, int hkv, int d, int block_size, uint64_t seed, KvDtype dtype = KvDtype::kF32)
      : hkv_(hkv), d_(d), bs_(block_size), dtype_(dtype) {
    const int blocks = (capacity + block_size - 1) / block_size;
    table_.resize(static_cast<size_t>(blocks));
    std::iota(table_.begin(), table_.end(), 0);
    std::shuffle(table_.begin(), table_.end(), std::mt19937_64(seed));
    const size_t rows = static_cast<size_t>(blocks) * hkv * block_size, ru = kv_row_units(dtype, d);
    k_.assign(rows * ru * kv_dtype_size(dtype), 0);
    const std::vector<float> nan(static_cast<size_t>(d), std::numeric_limits<float>::quiet_NaN());
    for (size_t r = 0; r < rows; ++r) {
      if (dtype != KvDtype::kQ8) store_kv_row(dtype, nan.data(), d, k_.data(), r * ru);
      for (int b = 0; dtype == KvDtype::kQ8 && b < d / kKvQ8Block; ++b)
        std::memcpy(&k_[r * ru + d + b * sizeof(float)], nan.data(), sizeof(float));
    }
    v_ = k_;
  }
  void write(const RawSequence& s, int first, int n) {
    for (int p = first; p < first + n; ++p) {
      for (int h = 0; h < hkv_; ++h) {
        const size_t src = (static_cast<size_t>(p) * hkv_ + h) * d_;
        store_kv_row(dtype_, &s.k[src], d_, k_.data(), view().offset(p, h));
        store_kv_row(dtype_, &s.v[src], d_, v_.data(), view().offset(p, h));
      }
    }
  }
  PagedKvView view() const {
    return PagedKvView{k_.data(), v_.data(), table_.data(), static_cast<int>(table_.size()), bs_, hkv_, d_, dtype_};
  }

 private:
  int hkv_, d_, bs_;
  KvDtype dtype_;
  std::vector<int32_t> table_;
  std::vector<unsigned char> k_, v_;  // bytes of [blocks, hkv, block_size] rows of dtype_
};

// Serves `s` through nsa_attend in chunks of the given sizes, writing each chunk's K/V into
// the cache first as the forward pass does; after each chunk calls on_chunk(first, n, out).
template <typename F>
void serve(const RawSequence& s, const NsaAdapter& adapter, int layer, NsaSequenceState& state, PagedKv& kv,
           const std::vector<int>& chunks, F&& on_chunk) {
  const ModelShape& m = s.m;
  const int H = m.num_heads, hkv = m.num_kv_heads, d = m.head_dim;
  std::vector<float> out;
  int first = 0;
  for (int n : chunks) {
    kv.write(s, first, n);
    out.assign(static_cast<size_t>(n) * H * d, std::numeric_limits<float>::quiet_NaN());
    LayerAttentionCall call;
    call.layer = layer;
    call.q = &s.q[static_cast<size_t>(first) * H * d];
    call.num_tokens = n;
    call.first_position = first;
    call.num_heads = H;
    call.num_kv_heads = hkv;
    call.head_dim = d;
    call.scale = 1.0f / std::sqrt(static_cast<float>(d));
    call.kv = kv.view();
    call.out = out.data();
    NsaLayerInputs extra;
    extra.q_unrotated = &s.qu[static_cast<size_t>(first) * H * d];
    extra.k_unrotated = &s.ku[static_cast<size_t>(first) * hkv * d];
    extra.x = &s.x[static_cast<size_t>(first) * m.hidden_size];
    extra.hidden_size = m.hidden_size;
    nsa_attend(call, extra, adapter, state);
    on_chunk(first, n, out);
    first += n;
  }
}


}  // namespace hotswap::testing
