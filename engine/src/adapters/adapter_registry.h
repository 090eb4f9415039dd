// Adapter name -> current immutable version (issue 5, specs/adapters.md, specs/api.md).
//
// A request pins the version current when it starts (pin() hands out the shared_ptr it
// keeps); put() replaces a name's version in one step and remove() unlinks the name, so
// running requests finish with what they pinned. put() parses and validates the document
// against the base model, then persists it atomically to the adapter directory (when one
// is configured, AdapterStore), and only then swaps it in: a rejected or unpersistable
// upload changes nothing, in memory or on disk.
//
// Resident set: the parameters of registered adapters are kept in memory up to a byte
// budget; beyond it the least recently pinned adapters that no request holds are dropped
// and reloaded from their file on their next pin (the file's sha256 must still be the
// registered one). Without an adapter directory nothing can be reloaded, so nothing is
// evicted.
//
// Threading: every method is thread-safe (HTTP I/O threads upload, the engine's submit()
// pins). Parsing, validation and file I/O run on the caller's thread without the registry
// lock; the lock covers only map updates. Mutations of one name (put, remove, reload) are
// serialised, so concurrent puts of a name end with the in-memory version equal to the file
// that was renamed last.
#pragma once

#include <array>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/adapter.h"
#include "adapters/adapter_store.h"
#include "adapters/model_shape.h"
#include "engine/adapter_info.h"
#include "engine/status.h"

namespace hotswap {

// Parses and validates one adapter document against `shape` (the first step of put() and
// of every (re)load): the adapter type comes from the encoding and the JSON `adapter_type`
// (absent or "mixed" -> mixed, "nsa" -> nsa, anything else is an InvalidArgument naming
// the value); safetensors is always nsa. Pure function; thread-safe.
Result<std::shared_ptr<const Adapter>> parse_adapter_document(std::string_view body, AdapterEncoding encoding,
                                                              const ModelShape& shape, const std::string& name);

// Bytes an adapter's parameters occupy in memory, for the resident budget.
size_t adapter_resident_bytes(const Adapter& adapter);

class AdapterRegistry {
 public:
  // `shape` is the base model's; `base_model_name` (if non-empty) replaces shape.model_name
  // for model_name mismatch notes. `adapter_dir` "" = no persistence (and no eviction).
  // `resident_budget_bytes` bounds the parameters kept in memory (see the file comment).
  AdapterRegistry(ModelShape shape, std::string base_model_name, std::string adapter_dir,
                  int64_t resident_budget_bytes);

  AdapterRegistry(const AdapterRegistry&) = delete;
  AdapterRegistry& operator=(const AdapterRegistry&) = delete;

  // Start-up: loads every adapter file of the adapter directory (parsed and validated like
  // an upload). A corrupt, foreign, torn or invalid file is logged (warn, naming the file
  // and why) and skipped; leftover temporary files of killed uploads are removed. Throws
  // LoadError only if the directory cannot be created or listed. Returns how many adapters
  // were loaded. No-op without an adapter directory.
  int load_directory();

  // Creates or replaces `name`. Errors (nothing stored changes): InvalidArgument for a bad
  // name or document (the codec's message: key, layer, expected, actual); Internal if the
  // file cannot be written.
  Result<AdapterPutResult> put(const std::string& name, std::string_view body, AdapterEncoding encoding);

  // The current version, for a request to keep for its whole life. Reloads an evicted
  // adapter from its file. NotFound (naming the adapter) if absent; Internal if an evicted
  // adapter's file is gone, changed or no longer valid.
  Result<std::shared_ptr<const Adapter>> pin(const std::string& name);

  Result<AdapterInfo> get(const std::string& name) const;
  std::vector<AdapterInfo> list() const;  // sorted by name
  // Unlinks the name and deletes its file. NotFound if absent; Internal if the file cannot
  // be deleted (the adapter then stays registered).
  Status remove(const std::string& name);

  AdapterStats stats() const;

  const ModelShape& shape() const { return shape_; }

 private:
  struct Entry {
    uint64_t sequence = 0;             // bumped by every put of the name
    AdapterInfo info;                  // everything but `resident`
    AdapterEncoding encoding = AdapterEncoding::kJson;
    std::shared_ptr<const Adapter> adapter;  // null while evicted
    size_t resident_bytes = 0;
    std::list<std::string>::iterator lru;    // valid while resident
  };

  // One lock per name hash: put/remove/reload of a name hold it across file I/O, never
  // together with another stripe. Lock order: stripe, then mu_.
  std::mutex& name_lock(const std::string& name);

  Result<std::shared_ptr<const Adapter>> reload(const std::string& name);
  // The following require mu_.
  void install_locked(const std::string& name, std::shared_ptr<const Adapter> adapter, AdapterEncoding encoding,
                      int64_t created_s);
  void make_resident_locked(const std::string& name, Entry& entry, std::shared_ptr<const Adapter> adapter);
  void drop_resident_locked(Entry& entry);
  void touch_locked(Entry& entry);
  void evict_over_budget_locked();
  AdapterInfo info_locked(const Entry& entry) const;

  const ModelShape shape_;
  const std::optional<AdapterStore> store_;  // empty: no persistence
  const int64_t resident_budget_bytes_;

  std::array<std::mutex, 64> name_locks_;

  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
  std::list<std::string> lru_;  // resident names, most recently used first
  uint64_t next_sequence_ = 1;
  int64_t resident_bytes_ = 0;
  int64_t loads_total_ = 0;
  int64_t evictions_total_ = 0;
  double last_upload_ms_ = 0;
};

}  // namespace hotswap
