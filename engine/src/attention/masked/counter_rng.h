// Counter-based random draws for the sampling maskers (specs/maskers.md Part 1
// "Determinism"): the draw_index-th uniform integer of the stream keyed by (request seed,
// layer, query head, position, stream) is a pure function of those values, so the same request
// and seed select the same keys whatever else is in the batch, whichever thread computes them
// and however a prompt is chunked.
//
// Generator: Philox4x32-10 (Salmon et al., SC'11; Random123's constants and known answers).
//   key     = (seed & 0xffffffff, seed >> 32)
//   counter = (block, position, head | layer << 16, stream | attempt << 8)
// Draw i uses 32-bit word i % 4 of block i / 4 (attempt 0). Bounded integers use Lemire's
// multiply-shift with rejection (no modulo bias); a rejected draw i continues, deterministically,
// with the words of block i at attempt 1, 2, ... (for ranges up to 32K keys a rejection happens
// about once in 130K draws).
#pragma once

#include <array>
#include <cstdint>

#include "core/check.h"

namespace hotswap::masked {

// Streams of one (seed, layer, head, position): one per kind of draw, so that no two draw
// sequences of a query ever share a counter.
enum class RngStream : uint32_t {
  kRandomSampling = 1,
  kAdaptiveBase = 2,
  kAdaptiveBudget = 3,
  kLshProjection = 4,  // MagicPig's projections (keyed by the masker's seed + layer, not the request)
  kTest = 255
};

inline std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u, kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k[0] += kW0;
      k[1] += kW1;
    }
    const uint64_t p0 = static_cast<uint64_t>(kM0) * c[0];
    const uint64_t p1 = static_cast<uint64_t>(kM1) * c[2];
    c = {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<uint32_t>(p1),
         static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<uint32_t>(p0)};
  }
  return c;
}

class CounterRng {
 public:
  static constexpr int kMaxLayers = 1 << 16;
  static constexpr int kMaxHeads = 1 << 16;

  CounterRng(uint64_t seed, int layer, int head, int position, RngStream stream)
      : key_{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)},
        position_(static_cast<uint32_t>(position)),
        layer_head_(static_cast<uint32_t>(head) | static_cast<uint32_t>(layer) << 16),
        stream_(static_cast<uint32_t>(stream)) {
    HS_CHECK(layer >= 0 && layer < kMaxLayers && head >= 0 && head < kMaxHeads && position >= 0)
        << "layer " << layer << " head " << head << " position " << position;
  }

  // The 4 words of `block` at `attempt`.
  std::array<uint32_t, 4> block(uint32_t block, uint32_t attempt = 0) const {
    return philox4x32_10({block, position_, layer_head_, stream_ | attempt << 8}, key_);
  }

  // The draw_index-th integer in [lo, hi); 0 < hi - lo <= 2^32, draw_index < 2^32.
  int64_t uniform(uint64_t draw_index, int64_t lo, int64_t hi) const {
    HS_CHECK(hi > lo && hi - lo <= (int64_t{1} << 32) && draw_index < (uint64_t{1} << 32));
    const uint64_t range = static_cast<uint64_t>(hi - lo);
    const uint32_t word = block(static_cast<uint32_t>(draw_index >> 2))[draw_index & 3];
    return lo + static_cast<int64_t>(bounded(word, range, draw_index));
  }

  // Draws first .. first + count - 1 into out (one Philox block per 4 draws); [lo, hi) must
  // fit int32.
  void fill(uint64_t first, int64_t count, int64_t lo, int64_t hi, int32_t* out) const {
    HS_CHECK(hi > lo && lo >= INT32_MIN && hi - 1 <= INT32_MAX && count >= 0 &&
             first + static_cast<uint64_t>(count) <= (uint64_t{1} << 32));
    const uint64_t range = static_cast<uint64_t>(hi - lo);
    uint64_t i = first;
    const uint64_t end = first + static_cast<uint64_t>(count);
    while (i < end) {
      const std::array<uint32_t, 4> words = block(static_cast<uint32_t>(i >> 2));
      for (uint64_t w = i & 3; w < 4 && i < end; ++w, ++i)
        *out++ = static_cast<int32_t>(lo + static_cast<int64_t>(bounded(words[w], range, i)));
    }
  }

 private:
  // Lemire (2019), "Fast random integer generation in an interval": x * range >> 32 is uniform
  // once the low product words below 2^32 mod range are rejected.
  uint64_t bounded(uint32_t x, uint64_t range, uint64_t draw_index) const {
    if (range == (uint64_t{1} << 32)) return x;
    const uint32_t r = static_cast<uint32_t>(range);
    uint64_t m = static_cast<uint64_t>(x) * r;
    if (static_cast<uint32_t>(m) < r) {
      const uint32_t threshold = static_cast<uint32_t>(-r) % r;
      uint32_t attempt = 0;
      int word = 4;
      std::array<uint32_t, 4> words{};
      while (static_cast<uint32_t>(m) < threshold) {
        if (word == 4) {
          ++attempt;
          HS_CHECK(attempt < (1u << 24)) << "rejection sampling did not terminate";
          words = block(static_cast<uint32_t>(draw_index), attempt);
          word = 0;
        }
        m = static_cast<uint64_t>(words[word++]) * r;
      }
    }
    return m >> 32;
  }

  std::array<uint32_t, 2> key_;
  uint32_t position_;
  uint32_t layer_head_;
  uint32_t stream_;
};

}  // namespace hotswap::masked
