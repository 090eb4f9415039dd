// BPE merge lookup: (left id, right id) -> (rank, merged id), an open-addressing hash table
// sized once at load time. Immutable after building; lookups are thread-safe.
#pragma once

#include <cstdint>
#include <vector>

namespace hotswap::tok {

class MergeTable {
 public:
  struct Merge {
    int32_t rank;  // position in the merges list; lower merges first
    int32_t new_id;
  };

  explicit MergeTable(size_t expected_entries) {
    size_t capacity = 16;
    while (capacity < expected_entries * 2) capacity <<= 1;
    slots_.assign(capacity, Slot{kEmpty, {0, 0}});
    mask_ = capacity - 1;
  }

  // Later insertions of the same pair overwrite earlier ones, as a Rust HashMap collect does.
  void insert(int32_t left, int32_t right, Merge merge) { probe(key(left, right)) = Slot{key(left, right), merge}; }

  const Merge* find(int32_t left, int32_t right) const {
    const uint64_t k = key(left, right);
    for (size_t i = hash(k) & mask_;; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.key == k) return &slot.merge;
      if (slot.key == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};  // ids are non-negative, so never a real key
  struct Slot {
    uint64_t key;
    Merge merge;
  };

  static uint64_t key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  static size_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return static_cast<size_t>(k);
  }
  Slot& probe(uint64_t k) {
    for (size_t i = hash(k) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].key == k || slots_[i].key == kEmpty) return slots_[i];
    }
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

}  // namespace hotswap::tok
