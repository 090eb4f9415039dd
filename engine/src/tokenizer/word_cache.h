// Memo of pre-token -> token ids for the BPE model. Thread-safe: sharded, one mutex per
// shard, so concurrent encodes rarely contend. Bounded: a full shard is emptied and refilled.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hotswap::tok {

class WordCache {
 public:
  static constexpr size_t kMaxWordBytes = 256;  // longer words are not worth keeping
  static constexpr size_t kShards = 16;
  static constexpr size_t kEntriesPerShard = 4096;

  // Appends the cached ids of `word` to `ids` and returns true on a hit.
  bool lookup(std::string_view word, std::vector<int32_t>& ids) const {
    Shard& shard = shard_for(word);
    std::lock_guard lock(shard.mutex);
    const auto it = shard.entries.find(word);
    if (it == shard.entries.end()) return false;
    ids.insert(ids.end(), it->second.begin(), it->second.end());
    return true;
  }

  void store(std::string_view word, std::span<const int32_t> ids) const {
    if (word.size() > kMaxWordBytes) return;
    Shard& shard = shard_for(word);
    std::lock_guard lock(shard.mutex);
    if (shard.entries.size() >= kEntriesPerShard) shard.entries.clear();
    shard.entries.emplace(std::string(word), std::vector<int32_t>(ids.begin(), ids.end()));
  }

 private:
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> entries;
  };

  Shard& shard_for(std::string_view word) const {
    return shards_[(std::hash<std::string_view>{}(word) >> 7) % kShards];
  }

  mutable std::array<Shard, kShards> shards_;
};

}  // namespace hotswap::tok
