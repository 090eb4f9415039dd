#include "attention/masked/hash_functions.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numbers>

#include "attention/masked/counter_rng.h"

namespace hotswap::masked {

namespace {

// GCC vector extension: 16 float32 lanes, one register.
typedef float V16 __attribute__((vector_size(64)));
constexpr int kRowTiles = 8;  // 128 outputs of one row in registers

// One row through one layer: outputs [o0, o0 + 16 * Tiles) accumulate in registers over the
// whole input loop, each as y += x_a * W[a, o] for a = 0, 1, ... (hash_signatures' order).
// Full: every tile has 16 outputs (no per-lane copies, which would keep acc in memory).
template <int Tiles, bool Full>
void row_tiles(const HashLinear& l, const float* w, const float* in, int o0, V16* acc) {
  for (int t = 0; t < Tiles; ++t) acc[t] = V16{};
  for (int a = 0; a < l.d_in; ++a) {
    const float* wr = w + static_cast<size_t>(a) * l.d_out + o0;
    for (int t = 0; t < Tiles; ++t) {
      V16 wv = {};
      const int lanes = Full ? 16 : std::min(16, l.d_out - o0 - 16 * t);
      std::memcpy(&wv, wr + 16 * t, sizeof(float) * static_cast<size_t>(lanes));
      acc[t] += in[a] * wv;
    }
  }
}

template <int Tiles>
void row_tiles(const HashLinear& l, const float* w, const float* in, int o0, V16* acc) {
  if (l.d_out - o0 >= 16 * Tiles)
    row_tiles<Tiles, true>(l, w, in, o0, acc);
  else
    row_tiles<Tiles, false>(l, w, in, o0, acc);
}

}  // namespace

uint64_t hash_signature(const std::vector<HashLinear>& mlp, HashActivation activation, int head, const float* x,
                        std::vector<float>& scratch) {
  int widest = 0;
  for (const HashLinear& l : mlp) widest = std::max({widest, l.d_in, l.d_out});
  if (scratch.size() < 2 * static_cast<size_t>(widest)) scratch.resize(2 * static_cast<size_t>(widest));
  const float* in = x;
  float* out = scratch.data();
  for (size_t i = 0; i < mlp.size(); ++i) {
    const HashLinear& l = mlp[i];
    const float* w = l.weight.data() + static_cast<size_t>(head) * l.d_in * l.d_out;
    const float* b = l.bias.data() + static_cast<size_t>(head) * l.d_out;
    const bool last = i + 1 == mlp.size();
    for (int o0 = 0; o0 < l.d_out; o0 += 16 * kRowTiles) {
      const int tiles = std::min(kRowTiles, (l.d_out - o0 + 15) / 16);
      V16 acc[kRowTiles];
      switch (tiles) {  // a compile-time tile count keeps the accumulators in registers
        case 1: row_tiles<1>(l, w, in, o0, acc); break;
        case 2: row_tiles<2>(l, w, in, o0, acc); break;
        case 3: row_tiles<3>(l, w, in, o0, acc); break;
        case 4: row_tiles<4>(l, w, in, o0, acc); break;
        case 5: row_tiles<5>(l, w, in, o0, acc); break;
        case 6: row_tiles<6>(l, w, in, o0, acc); break;
        case 7: row_tiles<7>(l, w, in, o0, acc); break;
        default: row_tiles<kRowTiles>(l, w, in, o0, acc); break;
      }
      for (int o = o0; o < std::min(l.d_out, o0 + 16 * kRowTiles); ++o)
        out[o] = acc[(o - o0) / 16][(o - o0) % 16] + b[o];  // NOLINT: vector subscript
    }
    if (!last) apply_hash_activation(activation, out, static_cast<size_t>(l.d_out));
    in = out;
    out = (out == scratch.data()) ? scratch.data() + widest : scratch.data();
  }
  const int bits = mlp.back().d_out;
  uint64_t sig = 0;
  for (int o = 0; o < bits; ++o)
    if (in[o] > 0.0f) sig |= uint64_t{1} << o;
  return sig;
}

void hash_signatures(const std::vector<HashLinear>& mlp, HashActivation activation, int head, const float* const* rows,
                     int n, uint64_t* out, std::vector<float>& scratch) {
  int widest = 0;
  for (const HashLinear& l : mlp) widest = std::max({widest, l.d_in, l.d_out});
  const size_t plane = static_cast<size_t>(kHashBatch) * widest;
  if (scratch.size() < 2 * plane) scratch.resize(2 * plane);
  float* in = scratch.data();  // [n][d_in] of the current layer
  float* next = scratch.data() + plane;
  const int d0 = mlp.front().d_in;
  // A short batch is padded with copies of its last row, so that every loop below has the
  // compile-time trip count kHashBatch (its accumulators then live in registers).
  for (int b = 0; b < kHashBatch; ++b) std::copy(rows[std::min(b, n - 1)], rows[std::min(b, n - 1)] + d0, in + static_cast<size_t>(b) * d0);
  for (size_t i = 0; i < mlp.size(); ++i) {
    const HashLinear& l = mlp[i];
    const float* w = l.weight.data() + static_cast<size_t>(head) * l.d_in * l.d_out;
    const float* bias = l.bias.data() + static_cast<size_t>(head) * l.d_out;
    const bool last = i + 1 == mlp.size();
    // 16 outputs x the batch's keys in registers; the sum over inputs runs in the order
    // hash_signature uses (a = 0, 1, ...), so every signature is bit-identical to it.
    for (int o0 = 0; o0 < l.d_out; o0 += 16) {
      const int lanes = std::min(16, l.d_out - o0);
      // GCC vector extension: 16 lanes, one register per key of the batch.
      V16 acc[kHashBatch] = {};
      for (int a = 0; a < l.d_in; ++a) {
        const float* wr = w + static_cast<size_t>(a) * l.d_out + o0;
        V16 wv = {};
        if (lanes == 16) std::memcpy(&wv, wr, sizeof wv);
        else std::memcpy(&wv, wr, sizeof(float) * static_cast<size_t>(lanes));
        for (int b = 0; b < kHashBatch; ++b) acc[b] += in[static_cast<size_t>(b) * l.d_in + a] * wv;
      }
      // Whole registers out, then lanes: a lane subscript on acc would keep it in memory (the
      // loop above then stored all 16 accumulators at every input).
      alignas(64) float sums[kHashBatch][16];
      std::memcpy(sums, acc, sizeof sums);
      for (int b = 0; b < kHashBatch; ++b)
        for (int lane = 0; lane < lanes; ++lane)
          next[static_cast<size_t>(b) * l.d_out + o0 + lane] = sums[b][lane] + bias[o0 + lane];
    }
    if (!last) apply_hash_activation(activation, next, static_cast<size_t>(kHashBatch) * l.d_out);
    std::swap(in, next);
  }
  const int bits = mlp.back().d_out;
  for (int b = 0; b < n; ++b) {
    uint64_t sig = 0;
    const float* y = in + static_cast<size_t>(b) * bits;
    for (int o = 0; o < bits; ++o)
      if (y[o] > 0.0f) sig |= uint64_t{1} << o;
    out[b] = sig;
  }
}

std::vector<float> lsh_projection(int64_t seed, int layer, int rows, int columns) {
  const size_t n = static_cast<size_t>(rows) * columns;
  std::vector<float> p(n);
  const CounterRng rng(static_cast<uint64_t>(seed + layer), 0, 0, 0, RngStream::kLshProjection);
  constexpr double kTwoPi = 2.0 * std::numbers::pi;
  for (size_t i = 0; i < n; i += 4) {
    const auto w = rng.block(static_cast<uint32_t>(i / 4));
    double u[4];
    for (int a = 0; a < 4; ++a) u[a] = (static_cast<double>(w[a]) + 0.5) * 0x1p-32;  // (0, 1)
    const double r0 = std::sqrt(-2.0 * std::log(u[0])), r1 = std::sqrt(-2.0 * std::log(u[2]));
    const double z[4] = {r0 * std::cos(kTwoPi * u[1]), r0 * std::sin(kTwoPi * u[1]), r1 * std::cos(kTwoPi * u[3]),
                         r1 * std::sin(kTwoPi * u[3])};
    for (size_t a = 0; a < 4 && i + a < n; ++a) p[i + a] = static_cast<float>(z[a]);
  }
  return p;
}

float lsh_norm(const float* x, int d) {
  return std::sqrt(sum16(d, [x](int i) { return x[i] * x[i]; }));
}

void lsh_codes(const float* v, const float* projection, int rows, int tables, int bits, uint64_t* codes) {
  const int columns = tables * bits;
  float acc[1024];  // columns <= kMaxLshTables * kMaxLshBits is checked at resolve: chunk by 1024
  for (int t = 0; t < tables; ++t) codes[t] = 0;
  for (int c0 = 0; c0 < columns; c0 += 1024) {
    const int n = std::min(1024, columns - c0);
    std::fill(acc, acc + n, 0.0f);
    for (int r = 0; r < rows; ++r) {
      const float x = v[r];
      const float* row = projection + static_cast<size_t>(r) * columns + c0;
      for (int c = 0; c < n; ++c) acc[c] += x * row[c];
    }
    for (int c = 0; c < n; ++c)
      if (acc[c] > 0.0f) codes[(c0 + c) / bits] |= uint64_t{1} << ((c0 + c) % bits);
  }
}

float lsh_cosine(const float* q_unit, const float* kc, int d, float max_norm) {
  // k̃ = [kc / M, sqrt(M² - ||kc||²) / M], then k̃ / (||k̃|| + 1e-8), as the reference.
  const float n = lsh_norm(kc, d);
  const float aug = std::sqrt(std::max(0.0f, max_norm * max_norm - n * n)) / max_norm;
  // k̃'s squared norm and q_unit . k̃ (q_unit's last component is 0), each in sum16's order.
  const auto k = [kc, max_norm](int i) { return kc[i] / max_norm; };
  const float sq = aug * aug + sum16(d, [&k](int i) { return k(i) * k(i); });
  const float dotv = sum16(d, [&k, q_unit](int i) { return q_unit[i] * k(i); });
  return std::clamp(dotv / (std::sqrt(sq) + 1e-8f), -1.0f, 1.0f);
}

void lsh_probabilities(float* x, int n, int tables, int bits) {
  // x^e for an integer e >= 1: squarings in double (exact base, relative error below 2^-42
  // for e <= 2^10), rounded once to float, so the correctly rounded power but for the rarest
  // near-ties (powf errs up to 0.82 ulp). Over a run of keys, bit by bit of e, so that it
  // vectorises: two powf calls a key took half of a MagicPig weight's time.
  constexpr int kRun = 64;
  double result[kRun], base[kRun];
  auto pow_each = [&](float* v, int m, int e) {
    for (int i = 0; i < m; ++i) result[i] = 1.0, base[i] = v[i];
    for (; e > 0; e >>= 1) {
      if (e & 1)
        for (int i = 0; i < m; ++i) result[i] *= base[i];
      for (int i = 0; i < m; ++i) base[i] *= base[i];
    }
    for (int i = 0; i < m; ++i) v[i] = static_cast<float>(result[i]);
  };
  for (int i0 = 0; i0 < n; i0 += kRun) {
    float* v = x + i0;
    const int m = std::min(kRun, n - i0);
    for (int i = 0; i < m; ++i) v[i] = 1.0f - std::acos(v[i]) / std::numbers::pi_v<float>;
    pow_each(v, m, bits);  // a table's collision probability
    for (int i = 0; i < m; ++i) v[i] = 1.0f - v[i];
    pow_each(v, m, tables);  // no table collides
    for (int i = 0; i < m; ++i) v[i] = 1.0f - v[i];
  }
}

float lsh_collision_probability(const float* q_unit, const float* kc, int d, float max_norm, int tables, int bits) {
  float p = lsh_cosine(q_unit, kc, d, max_norm);
  lsh_probabilities(&p, 1, tables, bits);
  return p;
}

float quest_bound(const float* q, const float* mn, const float* mx, int d) {
  return sum16(d, [q, mn, mx](int i) { return std::max(q[i] * mn[i], q[i] * mx[i]); });
}

void pseudo_quantize(float* x, int d, int bits) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < d; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
  float range = hi - lo;
  if (range == 0.0f) range = 1.0f;
  const float levels = static_cast<float>((1 << bits) - 1);
  const float scale = levels / range;
  for (int i = 0; i < d; ++i) {
    const float v = std::clamp(std::nearbyint((x[i] - lo) * scale), 0.0f, levels);  // half to even
    x[i] = v / scale + lo;
  }
}

}  // namespace hotswap::masked
