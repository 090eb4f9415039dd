// The adapter directory on disk (specs/adapters.md "Storage"; docs/adapters-shared-dir.md):
// one file per adapter holding the exact bytes that were uploaded, named `<name>.json` or
// `<name>.safetensors` after the upload's encoding, so a reload reproduces the same sha256.
//
// The directory may be shared by several processes (replicas on one ReadWriteMany volume),
// and nothing here assumes that writers never race:
// - Files are replaced atomically: the bytes go to a temporary file with a name no other
//   writer picks (`.<name>.<owner>-<random>.tmp`, see temp_file_owner()), are fsynced,
//   renamed over the final name and the directory is fsynced, so a process killed at any
//   moment leaves the previous file (or none) or the complete new one, never a torn one, and
//   two concurrent writes of one name leave one of the two complete files.
// - A temporary file is removed only when it is provably abandoned (abandoned_temp_reason()):
//   its writer was a process of this host (same kernel boot and pid namespace) that no
//   longer exists, or it was last changed more than kAbandonedTempFileAgeS ago. A live
//   writer's upload in progress, in this process or another, is never touched.
// - When both `<name>.json` and `<name>.safetensors` exist (a replacement that changed the
//   encoding and raced, or died before it removed the other file), every reader picks the
//   same one: the later upload time (mtime), and on a tie the safetensors file. The other is
//   removed with remove_if_unchanged's compare-and-delete, so a file renamed there meanwhile
//   is put back instead of lost.
//
// Stateless apart from the directory path; the filesystem is the shared state. Thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/adapter_info.h"
#include "engine/status.h"

namespace hotswap {

// Adapter names: [A-Za-z0-9][A-Za-z0-9._-]{0,63}. They become file names, so the rule also
// keeps out "", ".", "..", path separators and control characters. The message says what
// is wrong, e.g. "adapter name 'a/b' contains a path separator '/' at position 1; ...".
inline constexpr size_t kMaxAdapterNameLength = 64;
Status validate_adapter_name(std::string_view name);

// ".json" | ".safetensors"
const char* adapter_file_extension(AdapterEncoding encoding);

// A temporary file whose writer cannot be checked (another host, or a name without an owner)
// is abandoned once its status last changed this long ago (ctime: the data writes and the
// upload-time stamp both move it). Far beyond the time any write of an accepted upload takes.
inline constexpr int64_t kAbandonedTempFileAgeS = 3600;

// This process's part of its temporary file names: "<host>-<pid>-<start>", where <host> is a
// digest of the kernel's boot id and the pid namespace (so a pid is compared only where it
// names the same process) and <start> is the process's start time in clock ticks since boot
// (so a reused pid is not mistaken for the writer). <host> is "unknown" where /proc cannot
// tell; such files are then judged by age only.
std::string temp_file_owner();

// "" if the temporary file `file_name` (a directory entry `.<name>.<owner>-<random>.tmp`)
// must be kept; otherwise why it is abandoned. `ctime_ns` is its status change time.
std::string abandoned_temp_reason(std::string_view file_name, int64_t ctime_ns, int64_t now_ns);

// True for directory entries that are temporary files of this store (".<...>.tmp").
bool is_adapter_temp_file_name(std::string_view file_name);

// What stat() says about one adapter file: a write renames a new inode over the name, so
// any replacement changes it; an in-place edit changes the size or the mtime.
struct AdapterFileSignature {
  uint64_t dev = 0;
  uint64_t ino = 0;
  int64_t size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const AdapterFileSignature&) const = default;
};

// One adapter file.
struct StoredAdapterFile {
  std::string name;  // the adapter name (file name without extension)
  AdapterEncoding encoding = AdapterEncoding::kJson;
  std::string path;      // dir/name.ext
  int64_t mtime_ns = 0;  // nanoseconds since the epoch: the upload time write() gave it
  AdapterFileSignature signature;
};

// The file of two encodings of one name that every reader picks: the later mtime, and on
// a tie safetensors.
bool adapter_file_supersedes(const StoredAdapterFile& a, const StoredAdapterFile& b);

struct AdapterDirectoryScan {
  std::vector<StoredAdapterFile> adapters;  // sorted by name; one per name
  // Files that are not adapters, or lost to a newer file of the same name: "path: why".
  std::vector<std::string> skipped;
  // Abandoned temporary files, now deleted: "path: why".
  std::vector<std::string> removed_temp_files;
  int kept_temp_files = 0;  // uploads in progress (or not provably abandoned yet)
};

struct AdapterWriteResult {
  StoredAdapterFile file;  // what was renamed into place, with its signature
  bool replaced = false;   // a file of the name (either encoding) existed just before
};

struct AdapterFileContents {
  StoredAdapterFile file;  // the signature is fstat's of the descriptor the bytes came from
  std::string bytes;
};

class AdapterStore {
 public:
  // `dir` must be non-empty; scan() creates it (with parents) if missing.
  explicit AdapterStore(std::string dir);

  const std::string& dir() const { return dir_; }
  std::string path_of(std::string_view name, AdapterEncoding encoding) const;

  // Start-up and every rescan: creates the directory if needed, deletes abandoned temporary
  // files (only those; see the file comment) and lists the adapter files. Of two encodings
  // of one name the superseding one is listed and the other deleted (compare-and-delete).
  // Throws LoadError if the directory cannot be created or listed.
  AdapterDirectoryScan scan() const;

  // Atomically replaces the adapter's file with `bytes`, with mtime := mtime_ns (the
  // version's upload time, which scan() reports after a restart and on other replicas),
  // then removes whichever of the two encodings' files is superseded, if both exist. On an
  // I/O failure: Internal (message names the path and the errno text), the temporary file
  // is removed and the previous file is untouched.
  Result<AdapterWriteResult> write(std::string_view name, AdapterEncoding encoding, std::string_view bytes,
                                   int64_t mtime_ns) const;

  // Deletes the adapter's files (both encodings; absent is fine) and fsyncs the directory.
  Status remove(std::string_view name) const;

  // The current file of `name` (of two encodings, the superseding one) and its bytes, read
  // from one descriptor. NotFound if neither exists, Internal on other I/O errors.
  Result<AdapterFileContents> read_current(std::string_view name) const;

  // The whole file. NotFound if absent, Internal on other I/O errors.
  Result<std::string> read(std::string_view name, AdapterEncoding encoding) const;

  // Deletes `path` (an adapter file of `name`) only if it still is the file `expected`
  // (same device and inode): it is first renamed to a temporary name, and if what was taken
  // turns out to be a newer file renamed there meanwhile, it is linked back (unless the name
  // was taken again, by an even newer one). True if the expected file is gone.
  bool remove_if_unchanged(std::string_view name, const std::string& path, const AdapterFileSignature& expected) const;

 private:
  Status fsync_dir() const;
  std::string temp_path(std::string_view name) const;

  std::string dir_;
};

}  // namespace hotswap
