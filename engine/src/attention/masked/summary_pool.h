// Paged storage for the maskers' per-key summaries (specs/maskers.md Part 1 "State kept per
// sequence"): HashAttention signatures, MagicPig codes and Quest page bounds live in fixed-size
// byte pages of one pool per engine, beside the KV cache, and go back to it when the sequence
// ends or is preempted. A SummaryArray is one sequence's growable array of fixed-size records
// (one layer of one masker) over such pages; records never move once written.
//
// Engine thread only for grow/release; record contents are written and read by attend()'s
// worker threads while the engine thread waits for them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "attention/backend_resource.h"

namespace hotswap::masked {

class SummaryPool final : public BackendResource {
 public:
  static constexpr size_t kPageBytes = 64 * 1024;

  SummaryPool() = default;
  SummaryPool(const SummaryPool&) = delete;
  SummaryPool& operator=(const SummaryPool&) = delete;

  int32_t allocate();  // a page no one holds; contents undefined
  void release(int32_t page);
  std::byte* page(int32_t p) {
    return chunks_[static_cast<size_t>(p / kPagesPerChunk)].get() + static_cast<size_t>(p % kPagesPerChunk) * kPageBytes;
  }

  int64_t num_pages_in_use() const { return in_use_; }
  int64_t num_pages_created() const { return static_cast<int64_t>(held_.size()); }
  int64_t bytes_in_use() const override { return in_use_ * static_cast<int64_t>(kPageBytes); }

 private:
  static constexpr int kPagesPerChunk = 16;
  std::vector<std::unique_ptr<std::byte[]>> chunks_;
  std::vector<uint8_t> held_;
  std::vector<int32_t> free_;  // LIFO: recently released pages are reused first (warm)
  int64_t in_use_ = 0;
};

class SummaryArray {
 public:
  SummaryArray() = default;
  // `record_bytes` must divide into a page at least once and be a multiple of 8 (alignment).
  SummaryArray(SummaryPool* pool, size_t record_bytes);
  ~SummaryArray() { release(); }
  SummaryArray(SummaryArray&& o) noexcept { *this = std::move(o); }
  SummaryArray& operator=(SummaryArray&& o) noexcept;
  SummaryArray(const SummaryArray&) = delete;
  SummaryArray& operator=(const SummaryArray&) = delete;

  // Pages for records [0, n); engine thread.
  void reserve(int64_t n);
  void release();  // every page back to the pool; capacity 0

  template <typename T>
  T* record(int64_t i) {
    return reinterpret_cast<T*>(pool_->page(pages_[static_cast<size_t>(i / per_page_)]) +
                                static_cast<size_t>(i % per_page_) * record_bytes_);
  }
  template <typename T>
  const T* record(int64_t i) const {
    return const_cast<SummaryArray*>(this)->record<T>(i);
  }
  int64_t capacity() const { return static_cast<int64_t>(pages_.size()) * per_page_; }
  // Records [i * records_per_page(), (i + 1) * records_per_page()) are consecutive in memory,
  // record_bytes() apart.
  int64_t records_per_page() const { return per_page_; }
  size_t record_bytes() const { return record_bytes_; }
  int64_t num_pages() const { return static_cast<int64_t>(pages_.size()); }

 private:
  SummaryPool* pool_ = nullptr;
  size_t record_bytes_ = 0;
  int64_t per_page_ = 1;
  std::vector<int32_t> pages_;
};

}  // namespace hotswap::masked
