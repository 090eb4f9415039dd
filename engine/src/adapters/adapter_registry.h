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
// and reloaded from their file on their next pin. Without an adapter directory nothing can
// be reloaded, so nothing is evicted.
//
// One directory, several processes (issue 15; docs/adapters-shared-dir.md): the directory is
// the truth, this registry a cache of it. Replicas sharing the directory see each other's
// uploads, replacements and deletions through rescan(): on an inotify event and at least
// every AdapterSyncOptions::rescan_ms (a background thread, started by load_directory()).
// A rescan compares each file's stat signature with the version it registered and, for a
// changed file, reads it, hashes it and validates it: a new or replaced adapter is then
// registered without its parameters (loaded on first use, "lazily"), a deleted one is
// unregistered. Running requests keep the version they pinned. A pin of a name this registry
// does not know looks in the directory first, and a reload after eviction takes whatever
// version the file holds now (another replica may have replaced it), so a change never makes
// a request fail; deletion on disk makes it a 404. The identity is the sha256 of the file's
// bytes, the same on every replica.
//
// Threading: every method is thread-safe (HTTP I/O threads upload, the engine's submit()
// pins, the watcher thread rescans). Parsing, validation and file I/O run on the caller's
// thread without the registry lock; the lock covers only map updates. Mutations of one
// name (put, remove, reload, a rescan's update) are serialised, so concurrent puts of a name
// in one process end with the in-memory version equal to the file that was renamed last.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "adapters/adapter.h"
#include "adapters/adapter_store.h"
#include "adapters/adapter_document.h"
#include "adapters/model_shape.h"
#include "engine/adapter_info.h"
#include "engine/status.h"

namespace hotswap {

// How the registry follows changes other processes make to the adapter directory.
struct AdapterSyncOptions {
  // > 0: load_directory() starts a thread that rescans the directory when inotify reports a
  // change there and at least every rescan_ms. 0: the directory is read at start-up only
  // (and whenever rescan() is called).
  int rescan_ms = 0;
  // false: periodic rescans only (inotify sees only this host's changes; tests use false to
  // exercise the fallback alone).
  bool inotify = true;
};

// What one rescan changed in the registry.
struct AdapterRescanSummary {
  int added = 0;
  int replaced = 0;
  int removed = 0;   // deleted on disk, or the file is no longer a valid adapter
  int rejected = 0;  // files that are not valid adapters (logged once per file version)
  bool changed() const { return added + replaced + removed > 0; }
};

class AdapterRegistry {
 public:
  // `shape` is the base model's; `base_model_name` (if non-empty) replaces shape.model_name
  // for model_name mismatch notes. `adapter_dir` "" = no persistence (and no eviction).
  // `resident_budget_bytes` bounds the parameters kept in memory (see the file comment).
  AdapterRegistry(ModelShape shape, std::string base_model_name, std::string adapter_dir,
                  int64_t resident_budget_bytes, AdapterSyncOptions sync = {});
  ~AdapterRegistry();  // stops the watcher thread, if any

  AdapterRegistry(const AdapterRegistry&) = delete;
  AdapterRegistry& operator=(const AdapterRegistry&) = delete;

  // Start-up: loads every adapter file of the adapter directory (parsed and validated like
  // an upload). A corrupt, foreign, torn or invalid file is logged (warn, naming the file
  // and why) and skipped; abandoned temporary files of killed uploads are removed (only
  // those: AdapterStore). Throws LoadError only if the directory cannot be created or
  // listed. Returns how many adapters were loaded. Then, with sync.rescan_ms > 0, starts
  // the watcher thread. No-op without an adapter directory.
  int load_directory();

  // Brings the registry in step with the directory now (what the watcher thread runs):
  // files added, replaced or deleted by another process since the last look are registered
  // (without loading their parameters), re-registered or unregistered. Never throws; an
  // unreadable directory is logged and changes nothing. Thread-safe.
  AdapterRescanSummary rescan();
  // Rescans completed so far (by the watcher or rescan()).
  uint64_t rescans_completed() const { return rescans_.load(); }

  // Creates or replaces `name`. Errors (nothing stored changes): InvalidArgument for a bad
  // name or document (the codec's message: key, layer, expected, actual); Internal if the
  // file cannot be written.
  Result<AdapterPutResult> put(const std::string& name, std::string_view body, AdapterEncoding encoding);

  // The current version, for a request to keep for its whole life. A name not registered
  // here is looked up in the adapter directory (another replica may have uploaded it); an
  // evicted or not yet loaded adapter is loaded from its file as the file is now (another
  // replica may have replaced it: the new version is registered and returned). NotFound
  // (naming the adapter) if absent or deleted on disk, or if its file is not a valid adapter;
  // Internal if the file cannot be read.
  Result<std::shared_ptr<const Adapter>> pin(const std::string& name);

  Result<AdapterInfo> get(const std::string& name) const;
  std::vector<AdapterInfo> list() const;  // sorted by name
  // Unlinks the name and deletes its file (also a file another replica wrote that this one
  // has not registered yet). NotFound if neither; Internal if the file cannot be deleted
  // (the adapter then stays registered).
  Status remove(const std::string& name);

  AdapterStats stats() const;

  const ModelShape& shape() const { return shape_; }

 private:
  struct Entry {
    uint64_t sequence = 0;             // bumped by every put of the name
    AdapterInfo info;                  // everything but `resident`
    AdapterEncoding encoding = AdapterEncoding::kJson;
    std::shared_ptr<const Adapter> adapter;  // null while evicted or not loaded yet
    size_t resident_bytes = 0;
    std::list<std::string>::iterator lru;    // valid while resident
    AdapterFileSignature file;               // the file this version came from (with a store)
  };

  // One lock per name hash: put/remove/reload of a name hold it across file I/O, never
  // together with another stripe. Lock order: stripe, then mu_.
  std::mutex& name_lock(const std::string& name);

  // Loads `name` from the directory as it is now (pin's slow path). Takes the name lock.
  Result<std::shared_ptr<const Adapter>> load_current(const std::string& name);
  enum class SyncChange { kNone, kAdded, kReplaced, kRemoved, kRejected };
  // Makes the registration of `name` match its file (a rescan's step). Takes the name lock.
  SyncChange sync_name(const std::string& name);
  void add_watch();  // inotify on the directory (watch_ < 0 if that failed)
  void watch_loop();
  void stop_watching();
  void close_watch();
  // The following require mu_.
  void install_locked(const std::string& name, std::shared_ptr<const Adapter> adapter, AdapterEncoding encoding,
                      int64_t created_s, const AdapterFileSignature& file, bool resident);
  void erase_locked(std::map<std::string, Entry>::iterator it);
  void make_resident_locked(const std::string& name, Entry& entry, std::shared_ptr<const Adapter> adapter);
  void drop_resident_locked(Entry& entry);
  void touch_locked(Entry& entry);
  void evict_over_budget_locked();
  AdapterInfo info_locked(const Entry& entry) const;

  const ModelShape shape_;
  const std::optional<AdapterStore> store_;  // empty: no persistence
  const int64_t resident_budget_bytes_;
  const AdapterSyncOptions sync_;

  std::array<std::mutex, 64> name_locks_;

  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
  std::list<std::string> lru_;  // resident names, most recently used first
  uint64_t next_sequence_ = 1;
  int64_t resident_bytes_ = 0;
  int64_t loads_total_ = 0;
  int64_t evictions_total_ = 0;
  double last_upload_ms_ = 0;
  // Files found not to be valid adapters, by name: the version seen, so that a rescan
  // neither re-reads nor re-reports it until it changes.
  std::map<std::string, AdapterFileSignature> rejected_files_;

  std::mutex rescan_mu_;                    // one rescan at a time
  std::vector<std::string> reported_skips_;  // under rescan_mu_: skipped files already logged
  std::string reported_scan_error_;          // under rescan_mu_
  std::atomic<uint64_t> rescans_{0};
  std::thread watcher_;
  std::atomic<bool> stop_{false};
  int wake_fd_ = -1;  // eventfd that wakes the watcher for shutdown
  // inotify: set up by load_directory() before its listing, then the watcher thread's alone.
  int inotify_fd_ = -1;
  int watch_ = -1;
  bool watch_warned_ = false;
};

}  // namespace hotswap
