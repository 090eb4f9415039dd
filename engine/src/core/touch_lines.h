// Bringing scattered rows into cache before they are computed on: a loop of nothing but loads
// keeps the most lines in flight, where loads mixed into arithmetic whose stores wait on them
// stall behind the store buffer (bench/RESULTS.md, "The sparse kernel against the floor of its
// reads"). Used by the sparse attention kernel and MagicPig's weights; the benchmarks' floor
// probe reads the same way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace hotswap {

// Reads one word of every 64-byte line of [p, p + bytes) and returns their sum, so that the
// loads stay; pass the sum to keep_touched (or use it) once the loop is done.
inline uint64_t touch_lines(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  uint64_t s = 0;
  for (size_t x = 0; x < bytes; x += 64) {
    uint32_t w;
    std::memcpy(&w, c + x, sizeof w);
    s += w;
  }
  return s;
}

// Keeps touch_lines' loads from being optimised away, at no cost.
inline void keep_touched(uint64_t sum) { asm volatile("" : : "r"(sum)); }

}  // namespace hotswap
