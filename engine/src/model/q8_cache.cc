#include "model/q8_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/load_error.h"
#include "kernels/q8.h"

namespace hotswap {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[8] = {'H', 'S', 'W', 'Q', '8', 'C', 'C', 'H'};
constexpr uint64_t kFixedHeader = 32;
constexpr uint64_t kPage = 4096;

uint64_t fnv1a64(const uint8_t* p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

uint64_t rotl(uint64_t v, int r) { return (v << r) | (v >> (64 - r)); }

uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

uint64_t payload_offset_for(uint64_t key_bytes) {
  return (kFixedHeader + key_bytes + kPage - 1) / kPage * kPage;
}

// Writes all of [p, p + n); false on any error.
bool write_all(int fd, const uint8_t* p, uint64_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, std::min<uint64_t>(n, uint64_t{1} << 30));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<uint64_t>(w);
  }
  return true;
}

}  // namespace

std::string q8_cache_key(const std::vector<const SafetensorsFile*>& shards, const std::string& layout,
                         kernels::QuantFormat format) {
  std::string key = std::string("hotswap ") + kernels::quant_format_name(format) + " v" +
                    std::to_string(kQ8CacheVersion) + " block=" + std::to_string(kernels::kQ8Block) +
                    " panel=" + std::to_string(kernels::kQ8PanelRows) + " scale=f16\n";
  for (const SafetensorsFile* shard : shards) {
    const MappedFile& f = shard->file();
    struct stat st {};
    if (::stat(f.path().c_str(), &st) != 0) throw LoadError(f.path(), "cannot stat: " + std::string(std::strerror(errno)));
    // The safetensors header (already validated: its length fits the file).
    uint64_t header_len = 0;
    std::memcpy(&header_len, f.data(), 8);
    const uint64_t hashed = std::min<uint64_t>(8 + header_len, f.size());
    key += fs::path(f.path()).filename().string() + " size=" + std::to_string(st.st_size) +
           " mtime_ns=" + std::to_string(static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec) +
           " header=" + std::to_string(fnv1a64(f.data(), hashed)) + "\n";
  }
  return key + "layout=" + std::to_string(fnv1a64(reinterpret_cast<const uint8_t*>(layout.data()), layout.size())) + "\n";
}

uint64_t q8_cache_checksum(const uint8_t* data, size_t bytes) {
  constexpr uint64_t kP1 = 0x9e3779b185ebca87ull, kP2 = 0xc2b2ae3d27d4eb4full;
  uint64_t lane[4] = {kP1, kP2, ~kP1, ~kP2};
  size_t i = 0;
  for (; i + 32 <= bytes; i += 32)
    for (int l = 0; l < 4; ++l) lane[l] = rotl(lane[l] + load64(data + i + 8 * l) * kP2, 31) * kP1;
  uint64_t h = rotl(lane[0], 1) + rotl(lane[1], 7) + rotl(lane[2], 12) + rotl(lane[3], 18) + bytes;
  for (; i < bytes; ++i) h = rotl(h ^ (data[i] * kP1), 11) * kP2;
  return h ^ (h >> 29);
}

Q8CacheFile open_q8_cache(const std::string& path, const std::string& key, uint64_t payload_bytes, std::string* why) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    *why = "no cache file";
    return {};
  }
  std::unique_ptr<MappedFile> file;
  try {
    file = std::make_unique<MappedFile>(path);
  } catch (const LoadError& e) {
    *why = e.what();
    return {};
  }
  const uint8_t* p = file->data();
  const uint64_t size = file->size();
  if (size < kFixedHeader || std::memcmp(p, kMagic, 8) != 0) {
    *why = "not a q8 cache file";
    return {};
  }
  uint32_t version = 0, key_bytes = 0;
  uint64_t offset = 0, stored_payload = 0;
  std::memcpy(&version, p + 8, 4);
  std::memcpy(&key_bytes, p + 12, 4);
  std::memcpy(&offset, p + 16, 8);
  std::memcpy(&stored_payload, p + 24, 8);
  if (version != kQ8CacheVersion) {
    *why = "format version " + std::to_string(version) + ", expected " + std::to_string(kQ8CacheVersion);
    return {};
  }
  // Every size is compared with the expected one before any pointer is formed from it.
  if (key_bytes != key.size() || offset != payload_offset_for(key.size()) || stored_payload != payload_bytes ||
      size != offset + payload_bytes + 8) {
    *why = "size or layout differs (file " + std::to_string(size) + " bytes)";
    return {};
  }
  if (std::memcmp(p + kFixedHeader, key.data(), key.size()) != 0) {
    *why = "made from other weights (key differs)";
    return {};
  }
  if (load64(p + offset + payload_bytes) != q8_cache_checksum(p + offset, payload_bytes)) {
    *why = "checksum mismatch (corrupt)";
    return {};
  }
  Q8CacheFile out;
  out.payload = p + offset;
  out.file = std::move(file);
  return out;
}

bool write_q8_cache(const std::string& path, const std::string& key, const uint8_t* payload, uint64_t payload_bytes,
                    std::string* why) {
  static std::atomic<uint64_t> counter{0};
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    *why = tmp + ": " + std::strerror(errno);
    return false;
  }
  const uint64_t offset = payload_offset_for(key.size());
  std::string header(offset, '\0');
  const uint32_t version = kQ8CacheVersion, key_bytes = static_cast<uint32_t>(key.size());
  std::memcpy(header.data(), kMagic, 8);
  std::memcpy(header.data() + 8, &version, 4);
  std::memcpy(header.data() + 12, &key_bytes, 4);
  std::memcpy(header.data() + 16, &offset, 8);
  std::memcpy(header.data() + 24, &payload_bytes, 8);
  std::memcpy(header.data() + kFixedHeader, key.data(), key.size());
  const uint64_t checksum = q8_cache_checksum(payload, payload_bytes);
  const bool ok = write_all(fd, reinterpret_cast<const uint8_t*>(header.data()), header.size()) &&
                  write_all(fd, payload, payload_bytes) &&
                  write_all(fd, reinterpret_cast<const uint8_t*>(&checksum), sizeof checksum);
  const int err = errno;
  if (::close(fd) != 0 || !ok) {
    *why = tmp + ": write failed: " + std::strerror(ok ? errno : err);
    ::unlink(tmp.c_str());
    return false;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    *why = path + ": rename failed: " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

}  // namespace hotswap
