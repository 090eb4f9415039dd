// The on-disk cache of a model's quantised weights (q8 or q4: the key names the format), so
// that a restart maps them instead of quantising again (docs/weights.md). One file:
//   bytes [0, 32)        magic "HSWQ8CCH", format version (u32), key length (u32),
//                        payload offset (u64), payload bytes (u64)
//   [32, 32 + key)       the key: what the weights were quantised from (see q8_cache_key)
//   [offset, +payload)   the payload (offset: a multiple of 4096, so the data is page aligned),
//   last 8 bytes         a checksum of the payload.
// The file is untrusted: open_q8_cache checks every field against what the caller expects
// (version, key, exact payload size, file size, checksum) and refuses anything else; the
// caller then quantises again and replaces it. Writers write a private temporary file and
// rename it over the cache, so readers see an old file or a complete new one, never a torn
// one (no fsync: a file cut short by a crash fails the size or checksum test and is rewritten).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "core/safetensors_file.h"
#include "kernels/q8.h"

namespace hotswap {

inline constexpr uint32_t kQ8CacheVersion = 1;

// Identifies the source weights: the weight format (q8 / q4), file version and layout, then per
// shard its file name, size, modification time (ns) and a hash of its safetensors header, then
// `layout` (what the payload holds, e.g. the tensor list). Another checkpoint, an edited one,
// another weight format or another binary version gives another key.
std::string q8_cache_key(const std::vector<const SafetensorsFile*>& shards, const std::string& layout,
                         kernels::QuantFormat format = kernels::QuantFormat::kQ8);

// 64-bit checksum of the payload (four interleaved multiply-rotate lanes, several GB/s).
uint64_t q8_cache_checksum(const uint8_t* data, size_t bytes);

// The mapped cache file at `path` if it is valid for `key` with exactly `payload_bytes` of
// payload, else null with the reason in *why (missing file, other version, other key, wrong
// size, bad checksum, ...). Never throws for a bad or missing file.
struct Q8CacheFile {
  std::unique_ptr<MappedFile> file;
  const uint8_t* payload = nullptr;
};
Q8CacheFile open_q8_cache(const std::string& path, const std::string& key, uint64_t payload_bytes, std::string* why);

// Writes the cache atomically (temporary file in the same directory, then rename). False,
// with the reason in *why, when the directory cannot be written.
bool write_q8_cache(const std::string& path, const std::string& key, const uint8_t* payload, uint64_t payload_bytes,
                    std::string* why);

}  // namespace hotswap
