// xoshiro256** 1.0 (Blackman & Vigna, https://prng.di.unimi.it/xoshiro256starstar.c), seeded
// by expanding a 64-bit seed with splitmix64 as the authors recommend. Written out here
// rather than taken from <random> so a seed yields the same stream with every compiler and
// standard library. Not cryptographic. Not thread-safe: one generator per sequence.
#pragma once

#include <array>
#include <cstdint>

namespace hotswap {

class Xoshiro256 {
 public:
  explicit Xoshiro256(uint64_t seed) {
    uint64_t x = seed;
    for (uint64_t& word : state_) word = splitmix64(x);
  }
  // A generator with exactly this state (not all zero); for checking published vectors.
  static Xoshiro256 from_state(const std::array<uint64_t, 4>& state) {
    Xoshiro256 rng(0);
    rng.state_ = state;
    return rng;
  }

  uint64_t next() {
    const uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  // Uniform in [0, 1): the top 53 bits scaled by 2^-53, exact in a double.
  double next_double() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  // Advances x by the golden-ratio increment and returns a mixed value.
  static uint64_t splitmix64(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  std::array<uint64_t, 4> state_;
};

}  // namespace hotswap
