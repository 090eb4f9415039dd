// The adapter directory on disk (specs/adapters.md "Storage"): one file per adapter holding
// the exact bytes that were uploaded, named `<name>.json` or `<name>.safetensors` after the
// upload's encoding, so a reload reproduces the same sha256. Files are replaced atomically:
// the bytes go to `.<name>.<random>.tmp` in the same directory, are fsynced, renamed over
// the final name and the directory is fsynced, so a process killed at any moment leaves
// the previous file (or none) or the complete new one, never a torn one. Leftover
// temporary files are what a killed upload leaves; scan() removes them.
//
// Stateless apart from the directory path; the filesystem is the shared state. Callers
// serialise writes and removals of one name (AdapterRegistry does); different names may
// be written concurrently from any thread.
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

// One adapter file found by scan().
struct StoredAdapterFile {
  std::string name;  // the adapter name (file name without extension)
  AdapterEncoding encoding = AdapterEncoding::kJson;
  std::string path;      // dir/name.ext
  int64_t mtime_ns = 0;  // nanoseconds since the epoch: the upload time write() gave it
};

struct AdapterDirectoryScan {
  std::vector<StoredAdapterFile> adapters;  // sorted by name; one per name
  // Files that are not adapters, or lost to a newer file of the same name: "path: why".
  std::vector<std::string> skipped;
  std::vector<std::string> removed_temp_files;  // leftovers of killed uploads, now deleted
};

class AdapterStore {
 public:
  // `dir` must be non-empty; scan() creates it (with parents) if missing.
  explicit AdapterStore(std::string dir);

  const std::string& dir() const { return dir_; }
  std::string path_of(std::string_view name, AdapterEncoding encoding) const;

  // Start-up: creates the directory if needed, deletes leftover temporary files and lists
  // the adapter files. If both `<name>.json` and `<name>.safetensors` exist (a replacement
  // that changed encoding died between its rename and the removal of the old file), the
  // newer one wins and the older is deleted. Throws LoadError if the directory cannot be
  // created or listed.
  AdapterDirectoryScan scan() const;

  // Atomically replaces the adapter's file with `bytes`, with mtime := mtime_ns (the
  // version's upload time, which scan() reports after a restart), then deletes the file of
  // the other encoding if there is one. On an I/O failure: Internal (message names the path
  // and the errno text), the temporary file is removed and the previous file is untouched.
  Status write(std::string_view name, AdapterEncoding encoding, std::string_view bytes, int64_t mtime_ns) const;

  // Deletes the adapter's files (both encodings; absent is fine) and fsyncs the directory.
  Status remove(std::string_view name) const;

  // The whole file. NotFound if absent, Internal on other I/O errors.
  Result<std::string> read(std::string_view name, AdapterEncoding encoding) const;

 private:
  Status fsync_dir() const;

  std::string dir_;
};

}  // namespace hotswap
