#include "adapters/adapter_registry.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>

#include "adapters/sha256.h"
#include "core/check.h"

namespace hotswap {
namespace {
int64_t now_unix_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string not_registered(const std::string& name) { return "adapter '" + name + "' is not registered"; }

}  // namespace

AdapterRegistry::AdapterRegistry(ModelShape shape, std::string base_model_name, std::string adapter_dir,
                                 int64_t resident_budget_bytes, AdapterSyncOptions sync)
    : shape_([&] {
        if (!base_model_name.empty()) shape.model_name = std::move(base_model_name);
        return std::move(shape);
      }()),
      store_(adapter_dir.empty() ? std::nullopt : std::optional<AdapterStore>(std::in_place, std::move(adapter_dir))),
      resident_budget_bytes_(resident_budget_bytes),
      sync_(sync) {
  HS_CHECK(shape_.num_layers > 0 && shape_.num_kv_heads > 0 && shape_.num_heads % shape_.num_kv_heads == 0)
      << "invalid model shape L=" << shape_.num_layers << " H=" << shape_.num_heads << " Hkv=" << shape_.num_kv_heads;
}

AdapterRegistry::~AdapterRegistry() {
  stop_watching();
  close_watch();
}

std::mutex& AdapterRegistry::name_lock(const std::string& name) {
  return name_locks_[std::hash<std::string>{}(name) % name_locks_.size()];
}

int AdapterRegistry::load_directory() {
  if (!store_) return 0;
  // The watch first, then the listing: a change made between the two is then an event.
  if (sync_.rescan_ms > 0 && sync_.inotify && inotify_fd_ < 0) {
    std::error_code ec;
    std::filesystem::create_directories(store_->dir(), ec);  // scan() reports a failure
    add_watch();
  }
  const AdapterDirectoryScan scan = store_->scan();
  for (const std::string& why : scan.removed_temp_files) {
    spdlog::warn("event=adapter_temp_removed reason=\"{}\"", why);
  }
  for (const std::string& why : scan.skipped) spdlog::warn("event=adapter_file_skipped reason=\"{}\"", why);
  int loaded = 0;
  for (const StoredAdapterFile& file : scan.adapters) {
    // Read as the file is now (another process may have replaced it since the listing), with
    // the signature of exactly the bytes read.
    Result<AdapterFileContents> contents = store_->read_current(file.name);
    if (!contents) {
      if (contents.status().code() != StatusCode::kNotFound) {
        spdlog::warn("event=adapter_file_skipped file={} reason=\"{}\"", file.path, contents.status().message());
      }
      continue;
    }
    const StoredAdapterFile& current = contents->file;
    Result<std::shared_ptr<const Adapter>> parsed =
        parse_adapter_document(contents->bytes, current.encoding, shape_, current.name);
    std::lock_guard name_guard(name_lock(current.name));
    std::lock_guard guard(mu_);
    if (!parsed) {
      spdlog::warn("event=adapter_file_skipped file={} reason=\"{}\"", current.path, parsed.status().message());
      rejected_files_[current.name] = current.signature;
      continue;
    }
    install_locked(current.name, std::move(parsed).value(), current.encoding, current.mtime_ns / 1'000'000'000,
                   current.signature, /*resident=*/true);
    ++loads_total_;
    ++loaded;
  }
  spdlog::info("event=adapters_loaded dir={} loaded={} skipped={} temp_files_removed={} temp_files_in_progress={}",
               store_->dir(), loaded, scan.skipped.size() + (scan.adapters.size() - static_cast<size_t>(loaded)),
               scan.removed_temp_files.size(), scan.kept_temp_files);
  if (sync_.rescan_ms > 0 && !watcher_.joinable()) {
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) {
      spdlog::error("event=adapter_watch_failed dir={} error=\"eventfd: {}\"", store_->dir(), std::strerror(errno));
    } else {
      watcher_ = std::thread([this] { watch_loop(); });
      spdlog::info("event=adapter_watch_started dir={} rescan_ms={} inotify={}", store_->dir(), sync_.rescan_ms,
                   sync_.inotify);
    }
  }
  return loaded;
}

AdapterRescanSummary AdapterRegistry::rescan() {
  AdapterRescanSummary summary;
  if (!store_) return summary;
  std::lock_guard rescan_guard(rescan_mu_);
  AdapterDirectoryScan scan;
  try {
    scan = store_->scan();
  } catch (const std::exception& e) {
    // Logged once per distinct error, not every few seconds.
    if (reported_scan_error_ != e.what()) spdlog::error("event=adapter_rescan_failed error=\"{}\"", e.what());
    reported_scan_error_ = e.what();
    return summary;
  }
  reported_scan_error_.clear();
  for (const std::string& why : scan.removed_temp_files) spdlog::warn("event=adapter_temp_removed reason=\"{}\"", why);
  for (const std::string& why : scan.skipped) {
    if (std::find(reported_skips_.begin(), reported_skips_.end(), why) == reported_skips_.end()) {
      spdlog::warn("event=adapter_file_skipped reason=\"{}\"", why);
    }
  }
  reported_skips_ = scan.skipped;

  // The listing is only a hint of what changed: sync_name() looks again under the name lock.
  std::map<std::string, AdapterFileSignature> on_disk;
  for (const StoredAdapterFile& f : scan.adapters) on_disk.emplace(f.name, f.signature);
  std::vector<std::string> to_sync;
  {
    std::lock_guard guard(mu_);
    for (const auto& [name, sig] : on_disk) {
      const auto it = entries_.find(name);
      if (it != entries_.end() && it->second.file == sig) continue;
      if (it == entries_.end()) {
        const auto rejected = rejected_files_.find(name);
        if (rejected != rejected_files_.end() && rejected->second == sig) continue;
      }
      to_sync.push_back(name);
    }
    for (const auto& [name, entry] : entries_) {
      if (!on_disk.contains(name)) to_sync.push_back(name);
    }
    for (auto it = rejected_files_.begin(); it != rejected_files_.end();) {
      it = on_disk.contains(it->first) ? std::next(it) : rejected_files_.erase(it);
    }
  }
  for (const std::string& name : to_sync) {
    switch (sync_name(name)) {
      case SyncChange::kAdded: ++summary.added; break;
      case SyncChange::kReplaced: ++summary.replaced; break;
      case SyncChange::kRemoved: ++summary.removed; break;
      case SyncChange::kRejected: ++summary.rejected; break;
      case SyncChange::kNone: break;
    }
  }
  rescans_.fetch_add(1);
  if (summary.changed()) {
    spdlog::info("event=adapters_rescanned dir={} added={} replaced={} removed={} rejected={}", store_->dir(),
                 summary.added, summary.replaced, summary.removed, summary.rejected);
  }
  return summary;
}

AdapterRegistry::SyncChange AdapterRegistry::sync_name(const std::string& name) {
  std::lock_guard name_guard(name_lock(name));
  Result<AdapterFileContents> contents = store_->read_current(name);
  if (!contents) {
    if (contents.status().code() != StatusCode::kNotFound) {
      spdlog::warn("event=adapter_sync_failed name={} error=\"{}\"", name, contents.status().message());
      return SyncChange::kNone;  // keep what we have; the next rescan tries again
    }
    std::lock_guard guard(mu_);
    rejected_files_.erase(name);
    const auto it = entries_.find(name);
    if (it == entries_.end()) return SyncChange::kNone;
    spdlog::info("event=adapter_synced name={} change=removed sha256={} reason=\"its file was deleted\"", name,
                 it->second.info.sha256);
    erase_locked(it);
    return SyncChange::kRemoved;
  }
  const StoredAdapterFile& file = contents->file;
  std::string sha256;
  {
    std::lock_guard guard(mu_);
    const auto it = entries_.find(name);
    if (it != entries_.end() && it->second.file == file.signature) return SyncChange::kNone;
    const auto rejected = rejected_files_.find(name);
    if (it == entries_.end() && rejected != rejected_files_.end() && rejected->second == file.signature) {
      return SyncChange::kNone;
    }
    if (it != entries_.end()) sha256 = it->second.info.sha256;
  }
  if (!sha256.empty() && sha256_hex(contents->bytes) == sha256) {
    // The same document under a new file (uploaded again, or touched): same version, but
    // the upload time is the file's.
    std::lock_guard guard(mu_);
    const auto it = entries_.find(name);
    if (it != entries_.end() && it->second.info.sha256 == sha256) {
      it->second.file = file.signature;
      it->second.encoding = file.encoding;
      it->second.info.created = file.mtime_ns / 1'000'000'000;
    }
    return SyncChange::kNone;
  }
  Result<std::shared_ptr<const Adapter>> parsed = parse_adapter_document(contents->bytes, file.encoding, shape_, name);
  std::lock_guard guard(mu_);
  const auto it = entries_.find(name);
  if (!parsed) {
    spdlog::warn("event=adapter_file_skipped file={} reason=\"{}\"", file.path, parsed.status().message());
    rejected_files_[name] = file.signature;
    if (it == entries_.end()) return SyncChange::kRejected;
    spdlog::info("event=adapter_synced name={} change=removed sha256={} reason=\"its file is no longer a valid adapter\"",
                 name, it->second.info.sha256);
    erase_locked(it);
    return SyncChange::kRemoved;
  }
  rejected_files_.erase(name);
  const bool existed = it != entries_.end();
  // Registered without its parameters: they are loaded on first use (pin).
  install_locked(name, std::move(parsed).value(), file.encoding, file.mtime_ns / 1'000'000'000, file.signature,
                 /*resident=*/false);
  spdlog::info("event=adapter_synced name={} change={} sha256={} bytes={} file={}", name,
               existed ? "replaced" : "added", entries_.at(name).info.sha256, file.signature.size, file.path);
  return existed ? SyncChange::kReplaced : SyncChange::kAdded;
}

void AdapterRegistry::add_watch() {
  if (!sync_.inotify) return;
  if (inotify_fd_ < 0) inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ >= 0) {
    watch_ = ::inotify_add_watch(inotify_fd_, store_->dir().c_str(),
                                 IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
                                     IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR);
  }
  if ((inotify_fd_ < 0 || watch_ < 0) && !watch_warned_) {
    watch_warned_ = true;
    spdlog::warn("event=adapter_watch_degraded dir={} error=\"inotify: {}\" fallback=\"rescan every {} ms\"",
                 store_->dir(), std::strerror(errno), sync_.rescan_ms);
  }
}

void AdapterRegistry::watch_loop() {
  using Clock = std::chrono::steady_clock;
  // Reads every queued event; true if one may concern an adapter file (temporary files,
  // whose names start with '.', do not: their rename into place does).
  auto drain = [&](bool* watch_lost) {
    alignas(struct inotify_event) char buf[16384];
    bool relevant = false;
    for (;;) {
      const ssize_t n = ::read(inotify_fd_, buf, sizeof buf);
      if (n <= 0) break;
      for (ssize_t off = 0; off < n;) {
        const auto* ev = reinterpret_cast<const struct inotify_event*>(buf + off);
        off += static_cast<ssize_t>(sizeof(struct inotify_event) + ev->len);
        if (ev->mask & IN_Q_OVERFLOW) relevant = true;
        if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) *watch_lost = true;
        if (ev->len > 0 && ev->name[0] != '.' && ev->name[0] != '\0') relevant = true;
      }
    }
    return relevant;
  };

  const auto period = std::chrono::milliseconds(sync_.rescan_ms);
  Clock::time_point next = Clock::now() + period;
  while (!stop_.load()) {
    struct pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {watch_ >= 0 ? inotify_fd_ : -1, POLLIN, 0}};
    const auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now()).count();
    const int n = ::poll(fds, 2, static_cast<int>(std::clamp<int64_t>(wait_ms, 0, sync_.rescan_ms)));
    if (stop_.load()) break;
    bool changed = false;
    bool watch_lost = false;
    if (n > 0 && (fds[1].revents & POLLIN)) {
      changed = drain(&watch_lost);
      if (changed) {
        // One upload is several events, and replicas often change things in bursts: let a
        // burst settle for a few milliseconds and rescan once.
        struct pollfd more = {inotify_fd_, POLLIN, 0};
        while (!stop_.load() && ::poll(&more, 1, 5) > 0) drain(&watch_lost);
      }
    }
    if (watch_lost && watch_ >= 0) {
      ::inotify_rm_watch(inotify_fd_, watch_);
      watch_ = -1;
      changed = true;
    }
    const bool due = Clock::now() >= next;
    if (!changed && !due) continue;
    rescan();  // recreates a vanished directory
    if (watch_ < 0) add_watch();  // the directory was replaced or had vanished: watch it again
    next = Clock::now() + period;
  }
}

void AdapterRegistry::stop_watching() {
  if (!watcher_.joinable()) return;
  stop_.store(true);
  const uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
  watcher_.join();
  ::close(wake_fd_);
  wake_fd_ = -1;
}

void AdapterRegistry::close_watch() {
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  inotify_fd_ = -1;
  watch_ = -1;
}

Result<AdapterPutResult> AdapterRegistry::put(const std::string& name, std::string_view body,
                                              AdapterEncoding encoding) {
  const auto start = std::chrono::steady_clock::now();
  if (Status s = validate_adapter_name(name); !s) return s;
  // The expensive part, on the caller's thread with no lock held: uploads of different
  // names, and pins, proceed meanwhile.
  Result<std::shared_ptr<const Adapter>> parsed = parse_adapter_document(body, encoding, shape_, name);
  if (!parsed) return parsed.status();
  std::shared_ptr<const Adapter> adapter = std::move(parsed).value();

  const int64_t upload_ns = now_unix_ns();
  // Held across the file write so that the order of renames is the order of swaps.
  std::lock_guard name_guard(name_lock(name));
  AdapterFileSignature file;
  int64_t created_s = upload_ns / 1'000'000'000;
  bool replaced_on_disk = false;
  if (store_) {
    Result<AdapterWriteResult> written = store_->write(name, encoding, body, upload_ns);
    if (!written) {
      spdlog::error("event=adapter_persist_failed name={} error=\"{}\"", name, written.status().message());
      return written.status();
    }
    file = written->file.signature;
    // What every replica will read back as the upload time.
    created_s = written->file.mtime_ns / 1'000'000'000;
    replaced_on_disk = written->replaced;
  }
  std::lock_guard guard(mu_);
  const bool created = entries_.find(name) == entries_.end() && !replaced_on_disk;
  rejected_files_.erase(name);
  install_locked(name, adapter, encoding, created_s, file, /*resident=*/true);
  ++loads_total_;
  last_upload_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  AdapterPutResult result{info_locked(entries_.at(name)), created};
  spdlog::info("event=adapter_put name={} type={} sha256={} bytes={} {} latency_ms={:.2f}", name,
               result.info.type, result.info.sha256, result.info.bytes, created ? "created" : "replaced",
               last_upload_ms_);
  return result;
}

Result<std::shared_ptr<const Adapter>> AdapterRegistry::pin(const std::string& name) {
  {
    std::lock_guard guard(mu_);
    const auto it = entries_.find(name);
    if (it == entries_.end()) {
      if (Status s = validate_adapter_name(name); !s) return s;
      if (!store_) return Status::not_found(not_registered(name));
    } else if (it->second.adapter) {
      touch_locked(it->second);
      return it->second.adapter;
    } else {
      HS_CHECK(store_.has_value()) << "adapter '" << name << "' was evicted without an adapter directory";
    }
  }
  return load_current(name);
}

Result<std::shared_ptr<const Adapter>> AdapterRegistry::load_current(const std::string& name) {
  std::lock_guard name_guard(name_lock(name));
  bool registered = false;
  {
    std::lock_guard guard(mu_);
    const auto it = entries_.find(name);
    if (it != entries_.end() && it->second.adapter) {  // another pin loaded it while we waited
      touch_locked(it->second);
      return it->second.adapter;
    }
    registered = it != entries_.end();
  }
  Result<AdapterFileContents> contents = store_->read_current(name);
  if (!contents) {
    if (contents.status().code() == StatusCode::kNotFound) {
      std::lock_guard guard(mu_);
      rejected_files_.erase(name);
      const auto it = entries_.find(name);
      if (it == entries_.end()) return Status::not_found(not_registered(name));
      spdlog::info("event=adapter_synced name={} change=removed sha256={} reason=\"its file was deleted\"", name,
                   it->second.info.sha256);
      erase_locked(it);
      return Status::not_found(not_registered(name) + " (its file was deleted from the adapter directory)");
    }
    return Status::internal("adapter '" + name + "' cannot be loaded from the adapter directory '" + store_->dir() +
                            "': " + contents.status().message());
  }
  const StoredAdapterFile& file = contents->file;
  {
    std::lock_guard guard(mu_);
    const auto rejected = rejected_files_.find(name);
    if (!registered && rejected != rejected_files_.end() && rejected->second == file.signature) {
      return Status::not_found(not_registered(name) + ": its file '" + file.path + "' is not a valid adapter");
    }
  }
  Result<std::shared_ptr<const Adapter>> parsed = parse_adapter_document(contents->bytes, file.encoding, shape_, name);
  std::lock_guard guard(mu_);
  auto it = entries_.find(name);
  if (!parsed) {
    spdlog::warn("event=adapter_file_skipped file={} reason=\"{}\"", file.path, parsed.status().message());
    rejected_files_[name] = file.signature;
    if (it != entries_.end()) erase_locked(it);
    return Status::not_found(not_registered(name) + ": its file '" + file.path +
                             "' is not a valid adapter: " + parsed.status().message());
  }
  std::shared_ptr<const Adapter> adapter = std::move(parsed).value();
  ++loads_total_;
  if (it != entries_.end() && it->second.info.sha256 == adapter->sha256() && !it->second.adapter) {
    // The version registered: make it resident.
    it->second.file = file.signature;
    it->second.encoding = file.encoding;
    make_resident_locked(name, it->second, std::move(adapter));
    evict_over_budget_locked();
    spdlog::info("event=adapter_reloaded name={} sha256={}", name, it->second.info.sha256);
    return it->second.adapter;
  }
  // Not registered here yet, or the file holds another version now (another replica
  // uploaded or replaced it): that version becomes current.
  rejected_files_.erase(name);
  install_locked(name, std::move(adapter), file.encoding, file.mtime_ns / 1'000'000'000, file.signature,
                 /*resident=*/true);
  it = entries_.find(name);
  spdlog::info("event=adapter_synced name={} change={} sha256={} bytes={} file={} reason=\"first use\"", name,
               registered ? "replaced" : "added", it->second.info.sha256, file.signature.size, file.path);
  return it->second.adapter;
}

Result<AdapterInfo> AdapterRegistry::get(const std::string& name) const {
  std::lock_guard guard(mu_);
  const auto it = entries_.find(name);
  if (it != entries_.end()) return info_locked(it->second);
  if (Status s = validate_adapter_name(name); !s) return s;
  return Status::not_found(not_registered(name));
}

std::vector<AdapterInfo> AdapterRegistry::list() const {
  std::lock_guard guard(mu_);
  std::vector<AdapterInfo> out;
  out.reserve(entries_.size());
  for (const auto& [name, entry] : entries_) out.push_back(info_locked(entry));
  return out;
}

Status AdapterRegistry::remove(const std::string& name) {
  if (Status s = validate_adapter_name(name); !s) return s;
  std::lock_guard name_guard(name_lock(name));
  bool registered = false;
  {
    std::lock_guard guard(mu_);
    registered = entries_.find(name) != entries_.end();
  }
  if (!registered) {
    // Another replica may have uploaded it and this one not have looked yet.
    if (!store_) return Status::not_found(not_registered(name));
    struct stat st {};
    if (::stat(store_->path_of(name, AdapterEncoding::kJson).c_str(), &st) != 0 &&
        ::stat(store_->path_of(name, AdapterEncoding::kSafetensors).c_str(), &st) != 0) {
      return Status::not_found(not_registered(name));
    }
  }
  // File first: if it cannot be deleted the adapter stays registered and would come back
  // after a restart anyway, so report the failure instead of pretending.
  if (store_) {
    if (Status s = store_->remove(name); !s) {
      spdlog::error("event=adapter_remove_failed name={} error=\"{}\"", name, s.message());
      return s;
    }
  }
  std::lock_guard guard(mu_);
  rejected_files_.erase(name);
  const auto it = entries_.find(name);
  if (it != entries_.end()) erase_locked(it);
  spdlog::info("event=adapter_removed name={}", name);
  return Status::ok();
}

AdapterStats AdapterRegistry::stats() const {
  std::lock_guard guard(mu_);
  AdapterStats s;
  s.resident = static_cast<int64_t>(lru_.size());
  s.resident_bytes = resident_bytes_;
  s.registered = static_cast<int64_t>(entries_.size());
  s.loads_total = loads_total_;
  s.evictions_total = evictions_total_;
  s.last_upload_ms = last_upload_ms_;
  return s;
}

void AdapterRegistry::install_locked(const std::string& name, std::shared_ptr<const Adapter> adapter,
                                     AdapterEncoding encoding, int64_t created_s, const AdapterFileSignature& file,
                                     bool resident) {
  Entry& entry = entries_[name];
  if (entry.adapter) drop_resident_locked(entry);
  entry.sequence = next_sequence_++;
  entry.encoding = encoding;
  entry.file = file;
  entry.info = AdapterInfo{
      .name = name,
      .type = adapter_type_name(adapter->type()),
      .layers = adapter->num_layers(),
      .parameters_json = adapter->parameters_json(),
      .bytes = static_cast<int64_t>(adapter->source_bytes()),
      .sha256 = adapter->sha256(),
      .created = created_s,
      .description = adapter->description(),
      .resident = false,
  };
  if (!resident) return;
  make_resident_locked(name, entry, std::move(adapter));
  evict_over_budget_locked();
}

void AdapterRegistry::erase_locked(std::map<std::string, Entry>::iterator it) {
  if (it->second.adapter) drop_resident_locked(it->second);
  entries_.erase(it);
}

void AdapterRegistry::make_resident_locked(const std::string& name, Entry& entry,
                                           std::shared_ptr<const Adapter> adapter) {
  HS_CHECK(!entry.adapter) << "adapter '" << name << "' is already resident";
  entry.resident_bytes = adapter_resident_bytes(*adapter);
  entry.adapter = std::move(adapter);
  resident_bytes_ += static_cast<int64_t>(entry.resident_bytes);
  lru_.push_front(name);
  entry.lru = lru_.begin();
}

void AdapterRegistry::drop_resident_locked(Entry& entry) {
  HS_CHECK(entry.adapter) << "adapter '" << entry.info.name << "' is not resident";
  resident_bytes_ -= static_cast<int64_t>(entry.resident_bytes);
  lru_.erase(entry.lru);
  entry.adapter.reset();
  entry.resident_bytes = 0;
}

void AdapterRegistry::touch_locked(Entry& entry) { lru_.splice(lru_.begin(), lru_, entry.lru); }

void AdapterRegistry::evict_over_budget_locked() {
  if (!store_) return;  // nothing could be reloaded
  // From the least recently used end; the most recently used one always stays, since it
  // was just loaded to be used. A pinned adapter is skipped: dropping the registry's
  // reference would free nothing while a request holds it, and would force a second copy
  // on its next pin.
  for (auto it = lru_.end(); resident_bytes_ > resident_budget_bytes_ && it != lru_.begin();) {
    --it;
    if (it == lru_.begin()) break;
    Entry& entry = entries_.at(*it);
    if (entry.adapter.use_count() > 1) continue;
    const auto next = std::next(it);
    spdlog::debug("event=adapter_evicted name={} bytes={}", entry.info.name, entry.resident_bytes);
    drop_resident_locked(entry);
    ++evictions_total_;
    it = next;
  }
}

AdapterInfo AdapterRegistry::info_locked(const Entry& entry) const {
  AdapterInfo info = entry.info;
  info.resident = entry.adapter != nullptr;
  return info;
}

}  // namespace hotswap
