#include "gather_floor.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <numeric>
#include <random>

#include "core/touch_lines.h"

namespace hotswap::bench {
namespace {

constexpr size_t kLine = 64;
// Prefetch distance of the scattered reads, in bytes of K and V rows (the sparse kernel
// prefetches 16 keys of 256 bytes; beyond ~8 KiB this host gains nothing).
constexpr size_t kAheadBytes = 8192;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}



inline void prefetch_row(const char* row, size_t bytes) {
  for (size_t x = 0; x < bytes; x += kLine) __builtin_prefetch(row + x);
}

constexpr size_t kEvictionBytes = size_t{1} << 30;
volatile uint64_t g_sink = 0;

}  // namespace

void RowGatherProbe::evict() {
  if (!eviction_) {
    eviction_ = allocate_huge_buffer(kEvictionBytes);
    std::memset(eviction_.get(), 1, kEvictionBytes);
  }
  g_sink = g_sink + touch_lines(eviction_.get(), kEvictionBytes);
}

RowGatherProbe::RowGatherProbe(size_t working_set_bytes, size_t row_bytes, int page_rows)
    : row_bytes_(row_bytes), page_rows_(page_rows) {
  const size_t page_bytes = row_bytes * static_cast<size_t>(page_rows);
  const size_t pages = std::max<size_t>(1, working_set_bytes / 2 / page_bytes);
  bytes_ = 2 * pages * page_bytes;
  buffer_ = allocate_huge_buffer(bytes_);
  std::memset(buffer_.get(), 1, bytes_);
  page_of_.resize(pages);
  std::iota(page_of_.begin(), page_of_.end(), 0);
  std::shuffle(page_of_.begin(), page_of_.end(), std::mt19937_64(7));
}


double RowGatherProbe::stream_gbps(int reps) {
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    g_sink = g_sink + touch_lines(buffer_.get(), bytes_);
    best = std::max(best, static_cast<double>(bytes_) / seconds_since(t0) / 1e9);
  }
  return best;
}

double RowGatherProbe::scattered_ns_per_key(int run, double density, Residency residency, int reps) {
  const int64_t rows = static_cast<int64_t>(page_of_.size()) * page_rows_;
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const char* k_half = static_cast<const char*>(buffer_.get());
  const char* v_half = k_half + bytes_ / 2;
  const int ahead = static_cast<int>(kAheadBytes / (2 * row_bytes_)) + 1;
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    std::vector<size_t> offsets;  // byte offset of each chosen key's row within a half
    for (int64_t start = 0; start < rows; start += run) {
      if (u(rng) >= density) continue;
      for (int64_t pos = start; pos < std::min(rows, start + run); ++pos) {
        const int64_t page = page_of_[static_cast<size_t>(pos / page_rows_)];
        offsets.push_back((static_cast<size_t>(page) * page_rows_ + static_cast<size_t>(pos % page_rows_)) * row_bytes_);
      }
    }
    if (offsets.empty()) return 0;
    if (residency == Residency::kWarm)
      g_sink = g_sink + touch_lines(buffer_.get(), bytes_);
    else
      evict();
    const int n = static_cast<int>(offsets.size());
    const auto t0 = std::chrono::steady_clock::now();
    uint64_t s = 0;
    for (int j = 0; j < n; ++j) {
      if (j + ahead < n) prefetch_row(k_half + offsets[j + ahead], row_bytes_), prefetch_row(v_half + offsets[j + ahead], row_bytes_);
      s += touch_lines(k_half + offsets[j], row_bytes_) + touch_lines(v_half + offsets[j], row_bytes_);
    }
    best = std::min(best, seconds_since(t0) * 1e9 / n);
    g_sink = g_sink + s;
  }
  return best;
}

}  // namespace hotswap::bench
