#include "kv_cache/prefix_key.h"

namespace hotswap {
namespace {

// splitmix64's finaliser: a bijective mixer with full avalanche.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

constexpr uint64_t kSeedHi = 0x243f6a8885a308d3ull;  // pi digits: unrelated seeds per lane
constexpr uint64_t kSeedLo = 0x13198a2e03707344ull;

}  // namespace

PrefixKey prefix_key_root(std::string_view cache_namespace) {
  PrefixKey k{mix(kSeedHi ^ cache_namespace.size()), mix(kSeedLo + cache_namespace.size())};
  for (unsigned char c : cache_namespace) {
    k.hi = mix(k.hi ^ c);
    k.lo = mix(k.lo + (uint64_t{c} << 17));
  }
  return k;
}

PrefixKey prefix_key_next(const PrefixKey& parent, std::span<const int32_t> block_tokens) {
  PrefixKey k{mix(parent.hi ^ kSeedLo), mix(parent.lo + kSeedHi)};
  for (int32_t t : block_tokens) {
    const uint64_t u = static_cast<uint32_t>(t);
    k.hi = mix(k.hi ^ u);
    k.lo = mix(k.lo + (u << 21) + 1);
  }
  return k;
}

}  // namespace hotswap
