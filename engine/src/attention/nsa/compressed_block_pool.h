// Paged storage of the NSA compressed-block cache (specs/attention.md `nsa`): fixed-size
// pages, each holding `entries_per_page` consecutive compressed blocks of every KV head of one
// layer of one sequence, as keys [Hkv, d, E] (transposed: scoring a query against a page's
// keys is then a vector op over the entries) followed by values [Hkv, E, d], float32. One pool
// per model serves every NSA sequence and layer; a sequence's pages return to it when its
// NsaSequenceState is reset or destroyed.
//
// Storage grows in chunks of pages whose addresses never move, up to `max_pages` (0 = no
// limit: the cache of a sequence is then bounded by its KV cache, about 1/s of its size).
// Engine thread only for allocate/release, no locks; page contents are written and read by
// nsa_attend()'s worker threads while the engine thread waits for them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "attention/backend_resource.h"

namespace hotswap {

class CompressedBlockPool final : public BackendResource {
 public:
  static constexpr int kDefaultEntriesPerPage = 64;
  static constexpr int kMaxEntriesPerPage = 256;

  CompressedBlockPool(int num_kv_heads, int head_dim, int entries_per_page = kDefaultEntriesPerPage,
                      int64_t max_pages = 0);
  CompressedBlockPool(const CompressedBlockPool&) = delete;
  CompressedBlockPool& operator=(const CompressedBlockPool&) = delete;

  // A page no one holds, or nullopt when max_pages are in use. Its contents are undefined.
  std::optional<int32_t> allocate();
  void release(int32_t page);  // the page must be held

  // Entry e of KV head h of a page: key element c at keys(page)[(h * d + c) * E + e]; value
  // element c at values(page)[(h * E + e) * d + c].
  float* keys(int32_t page) { return page_base(page); }
  float* values(int32_t page) { return page_base(page) + half_floats(); }
  const float* keys(int32_t page) const { return const_cast<CompressedBlockPool*>(this)->keys(page); }
  const float* values(int32_t page) const { return const_cast<CompressedBlockPool*>(this)->values(page); }

  int num_kv_heads() const { return num_kv_heads_; }
  int head_dim() const { return head_dim_; }
  int entries_per_page() const { return entries_per_page_; }
  int64_t max_pages() const { return max_pages_; }
  int64_t num_pages_in_use() const { return num_in_use_; }
  int64_t num_pages_created() const { return static_cast<int64_t>(in_use_.size()); }
  size_t page_bytes() const { return page_bytes_for(num_kv_heads_, head_dim_, entries_per_page_); }
  static size_t page_bytes_for(int num_kv_heads, int head_dim, int entries_per_page) {
    return 2 * static_cast<size_t>(num_kv_heads) * entries_per_page * head_dim * sizeof(float);
  }
  int64_t bytes_in_use() const override { return num_in_use_ * static_cast<int64_t>(page_bytes()); }

 private:
  static constexpr int kPagesPerChunk = 64;

  size_t half_floats() const { return static_cast<size_t>(num_kv_heads_) * entries_per_page_ * head_dim_; }
  float* page_base(int32_t page) {
    return chunks_[static_cast<size_t>(page / kPagesPerChunk)].get() + (page % kPagesPerChunk) * 2 * half_floats();
  }

  int num_kv_heads_;
  int head_dim_;
  int entries_per_page_;
  int64_t max_pages_;
  int64_t num_in_use_ = 0;
  std::vector<std::unique_ptr<float[]>> chunks_;
  std::vector<uint8_t> in_use_;   // per created page
  std::vector<int32_t> free_;     // LIFO: recently released pages are reused first (warm)
};

}  // namespace hotswap
