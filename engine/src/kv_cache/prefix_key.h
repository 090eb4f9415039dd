// Keys of the prefix cache. A full KV block's key is a hash chain over the cache namespace
// (attention implementation + parameters + adapter version, specs/attention.md: caches
// belong to one pair) and the token ids of that block and every block before it, so equal
// keys mean equal KV contents. Two independently seeded 64-bit lanes make the key 128 bits;
// an accidental collision is not a practical concern.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace hotswap {

struct PrefixKey {
  uint64_t hi = 0;
  uint64_t lo = 0;
  bool operator==(const PrefixKey&) const = default;
};

struct PrefixKeyHash {
  size_t operator()(const PrefixKey& k) const { return static_cast<size_t>(k.lo ^ (k.hi * 0x9e3779b97f4a7c15ull)); }
};

// The chain's start for one cache namespace.
PrefixKey prefix_key_root(std::string_view cache_namespace);
// The key of a block whose predecessor's key is `parent` and whose tokens are `block_tokens`.
PrefixKey prefix_key_next(const PrefixKey& parent, std::span<const int32_t> block_tokens);

}  // namespace hotswap
