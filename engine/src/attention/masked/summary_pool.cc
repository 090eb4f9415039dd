#include "attention/masked/summary_pool.h"

#include "core/check.h"

namespace hotswap::masked {

int32_t SummaryPool::allocate() {
  int32_t p;
  if (!free_.empty()) {
    p = free_.back();
    free_.pop_back();
  } else {
    p = static_cast<int32_t>(held_.size());
    if (p % kPagesPerChunk == 0) chunks_.push_back(std::make_unique<std::byte[]>(kPagesPerChunk * kPageBytes));
    held_.push_back(0);
  }
  held_[static_cast<size_t>(p)] = 1;
  ++in_use_;
  return p;
}

void SummaryPool::release(int32_t p) {
  HS_CHECK(p >= 0 && static_cast<size_t>(p) < held_.size() && held_[static_cast<size_t>(p)])
      << "summary page " << p << " is not held";
  held_[static_cast<size_t>(p)] = 0;
  free_.push_back(p);
  --in_use_;
}

SummaryArray::SummaryArray(SummaryPool* pool, size_t record_bytes) : pool_(pool), record_bytes_(record_bytes) {
  HS_CHECK(pool != nullptr && record_bytes > 0 && record_bytes % 8 == 0 && record_bytes <= SummaryPool::kPageBytes)
      << "summary record of " << record_bytes << " bytes";
  per_page_ = static_cast<int64_t>(SummaryPool::kPageBytes / record_bytes);
}

SummaryArray& SummaryArray::operator=(SummaryArray&& o) noexcept {
  if (this != &o) {
    release();
    pool_ = o.pool_;
    record_bytes_ = o.record_bytes_;
    per_page_ = o.per_page_;
    pages_ = std::move(o.pages_);
    o.pages_.clear();
  }
  return *this;
}

void SummaryArray::reserve(int64_t n) {
  while (capacity() < n) pages_.push_back(pool_->allocate());
}

void SummaryArray::release() {
  for (int32_t p : pages_) pool_->release(p);
  pages_.clear();
}

}  // namespace hotswap::masked
