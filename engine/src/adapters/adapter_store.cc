#include "adapters/adapter_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <system_error>
#include <vector>

#include "core/load_error.h"

namespace hotswap {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kNamePattern = "expected [A-Za-z0-9][A-Za-z0-9._-]{0,63}";
constexpr std::string_view kTempSuffix = ".tmp";
// Large uploads are written in pieces so that one write() never asks the kernel for
// hundreds of megabytes at once.
constexpr size_t kWriteChunkBytes = 1 << 20;

// A name from the client, made safe for a message and a log line: printable ASCII as is,
// everything else as \xNN, bounded in length.
std::string printable(std::string_view s) {
  constexpr size_t kMax = 80;
  std::string out;
  for (size_t i = 0; i < s.size() && i < kMax; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > kMax) out += "...";
  return out;
}

bool is_alnum(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

std::string errno_text(int err) { return std::strerror(err); }

Status io_error(const char* what, const std::string& path, int err) {
  return Status::internal(std::string("adapter store: cannot ") + what + " '" + path + "': " + errno_text(err));
}

// A suffix that no concurrent writer (thread or process) of the same name picks too. The
// pid and the clock are mixed in on every call: a forked process inherits the generator's
// state, so the generator alone would repeat its parent's next suffix.
std::string random_suffix() {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng{static_cast<uint64_t>(std::random_device{}())};
  const uint64_t now = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  const uint64_t x = rng() ^ (counter.fetch_add(1, std::memory_order_relaxed) * 0x9e3779b97f4a7c15ull) ^
                     (static_cast<uint64_t>(::getpid()) << 40) ^ (now * 0xbf58476d1ce4e5b9ull);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(x));
  return buf;
}

std::string read_small_file(const char* path) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  char buf[512];
  std::string out;
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > 4096) break;
  }
  ::close(fd);
  return out;
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

constexpr std::string_view kUnknownHost = "unknown";

// The kernel boot and pid namespace this process runs in, as 16 hex digits: processes that
// share it see the same pids. kUnknownHost if /proc does not say.
const std::string& host_key() {
  static const std::string key = [] {
    std::string boot = read_small_file("/proc/sys/kernel/random/boot_id");
    while (!boot.empty() && (boot.back() == '\n' || boot.back() == ' ')) boot.pop_back();
    char ns[128];
    const ssize_t n = ::readlink("/proc/self/ns/pid", ns, sizeof ns);
    if (boot.empty() || n <= 0) return std::string(kUnknownHost);
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx",
                  static_cast<unsigned long long>(fnv1a(boot + "|" + std::string(ns, static_cast<size_t>(n)))));
    return std::string(buf);
  }();
  return key;
}

// /proc/<pid>/stat: the state letter and the start time (field 22, clock ticks since boot).
struct ProcStat {
  char state = '?';
  uint64_t start = 0;
};

// nullopt with *err = ENOENT when there is no such process.
std::optional<ProcStat> read_proc_stat(long pid, int* err) {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    return std::nullopt;
  }
  char buf[1024];
  ssize_t n;
  do n = ::read(fd, buf, sizeof buf - 1);
  while (n < 0 && errno == EINTR);
  *err = n < 0 ? errno : EINVAL;
  ::close(fd);
  if (n <= 0) {
    if (n == 0) *err = ENOENT;  // the process went away between open and read
    return std::nullopt;
  }
  buf[n] = '\0';
  // The command name (field 2) may contain spaces and parentheses; the fields after it start
  // after the last ')'.
  const char* p = std::strrchr(buf, ')');
  if (!p) return std::nullopt;
  ++p;
  ProcStat st;
  // Field 3 is the state; field 22 the start time: 19 more fields after the state.
  int field = 3;
  while (*p) {
    while (*p == ' ') ++p;
    if (!*p) break;
    const char* begin = p;
    while (*p && *p != ' ') ++p;
    if (field == 3) st.state = *begin;
    if (field == 22) {
      st.start = std::strtoull(begin, nullptr, 10);
      return st;
    }
    ++field;
  }
  return std::nullopt;
}

// False only when the process is provably gone: no such pid, a zombie, or another process
// (a different start time) under a reused pid. Anything unclear counts as alive.
bool process_alive(long pid, uint64_t start) {
  int err = 0;
  const std::optional<ProcStat> st = read_proc_stat(pid, &err);
  if (!st) return !(err == ENOENT || err == ESRCH);
  if (st->state == 'Z' || st->state == 'X' || st->state == 'x') return false;
  return st->start == start;
}

// The owner part of a temporary file name, parsed back.
struct TempOwner {
  std::string host;
  long pid = 0;
  uint64_t start = 0;
};

std::optional<TempOwner> parse_temp_owner(std::string_view file_name) {
  if (!file_name.starts_with(".") || !file_name.ends_with(kTempSuffix)) return std::nullopt;
  std::string_view core = file_name.substr(1, file_name.size() - 1 - kTempSuffix.size());
  const size_t dot = core.rfind('.');
  if (dot == std::string_view::npos) return std::nullopt;
  std::string_view owner = core.substr(dot + 1);  // host-pid-start-random
  std::vector<std::string_view> parts;
  while (true) {
    const size_t dash = owner.find('-');
    parts.push_back(owner.substr(0, dash));
    if (dash == std::string_view::npos) break;
    owner.remove_prefix(dash + 1);
  }
  if (parts.size() != 4 || parts[0].empty() || parts[1].empty() || parts[2].empty()) return std::nullopt;
  auto digits = [](std::string_view s) {
    return s.size() <= 19 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (!digits(parts[1]) || !digits(parts[2])) return std::nullopt;
  TempOwner out;
  out.host = std::string(parts[0]);
  out.pid = std::strtol(std::string(parts[1]).c_str(), nullptr, 10);
  out.start = std::strtoull(std::string(parts[2]).c_str(), nullptr, 10);
  return out;
}

Status write_all(int fd, std::string_view bytes, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    const size_t n = std::min(kWriteChunkBytes, bytes.size() - done);
    const ssize_t w = ::write(fd, bytes.data() + done, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return io_error("write", path, errno);
    }
    done += static_cast<size_t>(w);
  }
  return Status::ok();
}

int64_t mtime_ns_of(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

int64_t ctime_ns_of(const struct stat& st) {
  return static_cast<int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec;
}

AdapterFileSignature signature_of(const struct stat& st) {
  return AdapterFileSignature{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino),
                              static_cast<int64_t>(st.st_size), mtime_ns_of(st)};
}

int64_t now_unix_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

AdapterEncoding other_encoding(AdapterEncoding e) {
  return e == AdapterEncoding::kJson ? AdapterEncoding::kSafetensors : AdapterEncoding::kJson;
}

}  // namespace

Status validate_adapter_name(std::string_view name) {
  const std::string shown = "adapter name '" + printable(name) + "'";
  if (name.empty()) return Status::invalid_argument("adapter name is empty; " + std::string(kNamePattern));
  if (name == "." || name == "..") {
    return Status::invalid_argument(shown + " is a path component, not a name; " + std::string(kNamePattern));
  }
  // Separators and control characters first: they are the hostile cases and deserve the
  // precise message even in a name that is also too long.
  for (size_t i = 0; i < name.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(name[i]);
    if (c == '/' || c == '\\') {
      return Status::invalid_argument(shown + " contains a path separator '" + std::string(1, static_cast<char>(c)) +
                                      "' at position " + std::to_string(i) + "; " + std::string(kNamePattern));
    }
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "0x%02x", c);
      return Status::invalid_argument(shown + " contains control character " + buf + " at position " +
                                      std::to_string(i) + "; " + std::string(kNamePattern));
    }
  }
  if (name.size() > kMaxAdapterNameLength) {
    return Status::invalid_argument(shown + " is " + std::to_string(name.size()) + " characters long; at most " +
                                    std::to_string(kMaxAdapterNameLength) + " are allowed");
  }
  if (!is_alnum(static_cast<unsigned char>(name[0]))) {
    return Status::invalid_argument(shown + " must start with a letter or digit, got '" + printable(name.substr(0, 1)) +
                                    "'; " + std::string(kNamePattern));
  }
  for (size_t i = 1; i < name.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(name[i]);
    if (!is_alnum(c) && c != '.' && c != '_' && c != '-') {
      return Status::invalid_argument(shown + " contains '" + printable(name.substr(i, 1)) + "' at position " +
                                      std::to_string(i) + "; allowed are letters, digits, '.', '_' and '-'");
    }
  }
  return Status::ok();
}

const char* adapter_file_extension(AdapterEncoding encoding) {
  return encoding == AdapterEncoding::kSafetensors ? ".safetensors" : ".json";
}

std::string temp_file_owner() {
  const std::string start = [] {
    int err = 0;
    const std::optional<ProcStat> st = read_proc_stat(static_cast<long>(::getpid()), &err);
    return std::to_string(st ? st->start : 0);
  }();
  return host_key() + "-" + std::to_string(static_cast<long>(::getpid())) + "-" + start;
}

bool is_adapter_temp_file_name(std::string_view file_name) {
  return file_name.size() > 1 + kTempSuffix.size() && file_name.starts_with(".") && file_name.ends_with(kTempSuffix);
}

std::string abandoned_temp_reason(std::string_view file_name, int64_t ctime_ns, int64_t now_ns) {
  const std::optional<TempOwner> owner = parse_temp_owner(file_name);
  if (owner && owner->host != kUnknownHost && owner->host == host_key() && !process_alive(owner->pid, owner->start)) {
    return "its writer, process " + std::to_string(owner->pid) + " on this host, no longer exists";
  }
  const int64_t age_s = (now_ns - ctime_ns) / 1'000'000'000;
  if (age_s > kAbandonedTempFileAgeS) {
    return "unchanged for " + std::to_string(age_s) + " s (more than " + std::to_string(kAbandonedTempFileAgeS) +
           " s)" + (owner ? "" : ", no writer named in it");
  }
  return "";
}

bool adapter_file_supersedes(const StoredAdapterFile& a, const StoredAdapterFile& b) {
  if (a.mtime_ns != b.mtime_ns) return a.mtime_ns > b.mtime_ns;
  return a.encoding == AdapterEncoding::kSafetensors && b.encoding != AdapterEncoding::kSafetensors;
}

AdapterStore::AdapterStore(std::string dir) : dir_(std::move(dir)) {
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
}

std::string AdapterStore::path_of(std::string_view name, AdapterEncoding encoding) const {
  return dir_ + "/" + std::string(name) + adapter_file_extension(encoding);
}

std::string AdapterStore::temp_path(std::string_view name) const {
  // A leading dot keeps the temporary file out of the adapter namespace (names start with a
  // letter or digit), so scan() tells them apart by their name alone; the owner lets any
  // process on this host tell whether the writer still lives.
  return dir_ + "/." + std::string(name) + "." + temp_file_owner() + "-" + random_suffix() + std::string(kTempSuffix);
}

AdapterDirectoryScan AdapterStore::scan() const {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw LoadError(dir_, "cannot create the adapter directory: " + ec.message());

  AdapterDirectoryScan scan;
  std::map<std::string, std::vector<StoredAdapterFile>> by_name;
  fs::directory_iterator it(dir_, ec);
  if (ec) throw LoadError(dir_, "cannot list the adapter directory: " + ec.message());
  const int64_t now_ns = now_unix_ns();
  for (const fs::directory_entry& entry : it) {
    const std::string file = entry.path().filename().string();
    const std::string path = entry.path().string();
    if (is_adapter_temp_file_name(file)) {
      struct stat st {};
      if (::lstat(path.c_str(), &st) != 0) continue;  // renamed into place or removed meanwhile
      const std::string why = abandoned_temp_reason(file, ctime_ns_of(st), now_ns);
      if (why.empty()) {
        ++scan.kept_temp_files;  // an upload in progress: never touched
      } else if (::unlink(path.c_str()) == 0 || errno == ENOENT) {
        scan.removed_temp_files.push_back(path + ": " + why);
      } else {
        scan.skipped.push_back(path + ": abandoned temporary file (" + why + ") could not be removed: " +
                               errno_text(errno));
      }
      continue;
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      if (errno != ENOENT) scan.skipped.push_back(path + ": cannot stat: " + errno_text(errno));
      continue;
    }
    if (!S_ISREG(st.st_mode)) {
      scan.skipped.push_back(path + ": not a regular file");
      continue;
    }
    StoredAdapterFile found;
    if (file.ends_with(".json")) {
      found.encoding = AdapterEncoding::kJson;
    } else if (file.ends_with(".safetensors")) {
      found.encoding = AdapterEncoding::kSafetensors;
    } else {
      scan.skipped.push_back(path + ": not an adapter file (expected <name>.json or <name>.safetensors)");
      continue;
    }
    found.name = file.substr(0, file.size() - std::strlen(adapter_file_extension(found.encoding)));
    if (Status s = validate_adapter_name(found.name); !s) {
      scan.skipped.push_back(path + ": file name is not an adapter name: " + s.message());
      continue;
    }
    found.path = path;
    found.mtime_ns = mtime_ns_of(st);
    found.signature = signature_of(st);
    by_name[found.name].push_back(std::move(found));
  }

  bool removed_any = false;
  for (auto& [name, files] : by_name) {
    if (files.size() > 1) {
      std::sort(files.begin(), files.end(), adapter_file_supersedes);
      for (size_t i = 1; i < files.size(); ++i) {
        const bool removed = remove_if_unchanged(name, files[i].path, files[i].signature);
        removed_any |= removed;
        scan.skipped.push_back(files[i].path + ": superseded by " + files[0].path + " (a newer upload); " +
                               (removed ? "removed" : "it changed meanwhile, left for the next scan"));
      }
    }
    scan.adapters.push_back(std::move(files[0]));
  }
  if (removed_any || !scan.removed_temp_files.empty()) {
    if (Status s = fsync_dir(); !s) scan.skipped.push_back(dir_ + ": " + s.message());
  }
  return scan;
}

Result<AdapterWriteResult> AdapterStore::write(std::string_view name, AdapterEncoding encoding, std::string_view bytes,
                                               int64_t mtime_ns) const {
  const std::string final_path = path_of(name, encoding);
  const std::string tmp_path = temp_path(name);

  const int fd = ::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return io_error("create", tmp_path, errno);
  auto fail = [&](Status s, bool close_fd) {
    if (close_fd) ::close(fd);
    ::unlink(tmp_path.c_str());
    return s;
  };
  if (Status s = write_all(fd, bytes, tmp_path); !s) return fail(std::move(s), true);
  const struct timespec times[2] = {{mtime_ns / 1'000'000'000, mtime_ns % 1'000'000'000},
                                    {mtime_ns / 1'000'000'000, mtime_ns % 1'000'000'000}};
  if (::futimens(fd, times) != 0) return fail(io_error("set the time of", tmp_path, errno), true);
  // The data must be on disk before the rename makes it visible under the final name;
  // otherwise a power loss could leave the new name pointing at a short file.
  if (::fsync(fd) != 0) return fail(io_error("fsync", tmp_path, errno), true);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail(io_error("stat", tmp_path, errno), true);
  if (::close(fd) != 0) return fail(io_error("close", tmp_path, errno), false);

  AdapterWriteResult result;
  result.file.name = std::string(name);
  result.file.encoding = encoding;
  result.file.path = final_path;
  result.file.mtime_ns = mtime_ns_of(st);
  result.file.signature = signature_of(st);
  struct stat existing {};
  const std::string other_path = path_of(name, other_encoding(encoding));
  result.replaced = ::stat(final_path.c_str(), &existing) == 0 || ::stat(other_path.c_str(), &existing) == 0;

  if (::rename(tmp_path.c_str(), final_path.c_str()) != 0) {
    return fail(io_error("rename into place", final_path, errno), false);
  }
  // A file of the other encoding: the older upload of the two goes. Usually that is the
  // other one (this upload changed the encoding); if a concurrent upload in the other
  // encoding is newer, this one has lost and goes instead, as every reader would ignore it.
  struct stat other_st {};
  if (::stat(other_path.c_str(), &other_st) == 0) {
    StoredAdapterFile other;
    other.encoding = other_encoding(encoding);
    other.mtime_ns = mtime_ns_of(other_st);
    other.signature = signature_of(other_st);
    if (adapter_file_supersedes(result.file, other)) {
      remove_if_unchanged(name, other_path, other.signature);
    } else {
      remove_if_unchanged(name, final_path, result.file.signature);
    }
  } else if (errno != ENOENT) {
    return io_error("stat", other_path, errno);
  }
  if (Status s = fsync_dir(); !s) return s;
  return result;
}

bool AdapterStore::remove_if_unchanged(std::string_view name, const std::string& path,
                                       const AdapterFileSignature& expected) const {
  const std::string taken = temp_path(name);
  if (::rename(path.c_str(), taken.c_str()) != 0) return errno == ENOENT;  // already gone
  struct stat st {};
  const bool same = ::lstat(taken.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_dev) == expected.dev &&
                    static_cast<uint64_t>(st.st_ino) == expected.ino;
  if (same) {
    ::unlink(taken.c_str());
    return true;
  }
  // A newer file was renamed there after `expected` was seen: put it back. link() never
  // replaces, so if the name was taken once more meanwhile, the newest file stays and the
  // one taken (older than it) goes.
  if (::link(taken.c_str(), path.c_str()) == 0 || errno == EEXIST) {
    ::unlink(taken.c_str());
    return false;
  }
  // No hard links here (some network filesystems): rename back, which may replace a file
  // renamed there in the last microseconds. If even that fails the file stays under its
  // temporary name, removed later as abandoned.
  (void)::rename(taken.c_str(), path.c_str());
  return false;
}

Status AdapterStore::remove(std::string_view name) const {
  for (AdapterEncoding e : {AdapterEncoding::kJson, AdapterEncoding::kSafetensors}) {
    const std::string path = path_of(name, e);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return io_error("remove", path, errno);
  }
  return fsync_dir();
}

Result<AdapterFileContents> AdapterStore::read_current(std::string_view name) const {
  // Another process may replace or remove the file between the look and the open; try again
  // then (a few times: each retry means the name changed under us once more).
  for (int attempt = 0; attempt < 8; ++attempt) {
    std::optional<StoredAdapterFile> best;
    for (AdapterEncoding e : {AdapterEncoding::kJson, AdapterEncoding::kSafetensors}) {
      StoredAdapterFile f;
      f.name = std::string(name);
      f.encoding = e;
      f.path = path_of(name, e);
      struct stat st {};
      if (::stat(f.path.c_str(), &st) != 0) {
        if (errno == ENOENT || errno == ESTALE) continue;
        return io_error("stat", f.path, errno);
      }
      if (!S_ISREG(st.st_mode)) continue;
      f.mtime_ns = mtime_ns_of(st);
      f.signature = signature_of(st);
      if (!best || adapter_file_supersedes(f, *best)) best = std::move(f);
    }
    if (!best) return Status::not_found("adapter store: no file for '" + std::string(name) + "' in '" + dir_ + "'");
    const int fd = ::open(best->path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT || errno == ESTALE) continue;
      return io_error("open", best->path, errno);
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      if (err == ESTALE) continue;
      return io_error("stat", best->path, err);
    }
    AdapterFileContents out;
    out.bytes.resize(static_cast<size_t>(st.st_size));
    size_t done = 0;
    int err = 0;
    while (done < out.bytes.size()) {
      const ssize_t r = ::read(fd, out.bytes.data() + done, out.bytes.size() - done);
      if (r < 0) {
        if (errno == EINTR) continue;
        err = errno;
        break;
      }
      if (r == 0) break;
      done += static_cast<size_t>(r);
    }
    ::close(fd);
    if (err == ESTALE) continue;
    if (err != 0) return io_error("read", best->path, err);
    if (done != out.bytes.size()) continue;  // changed in place while read: look again
    out.bytes.resize(done);
    best->mtime_ns = mtime_ns_of(st);
    best->signature = signature_of(st);
    out.file = std::move(*best);
    return out;
  }
  return Status::internal("adapter store: the file of '" + std::string(name) + "' in '" + dir_ +
                          "' kept changing while it was read");
}

Result<std::string> AdapterStore::read(std::string_view name, AdapterEncoding encoding) const {
  const std::string path = path_of(name, encoding);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::not_found("adapter store: '" + path + "' does not exist");
    return io_error("open", path, errno);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return io_error("stat", path, err);
  }
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t r = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (r < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return io_error("read", path, err);
    }
    if (r == 0) break;  // shrank while reading: the digest check upstream will notice
    done += static_cast<size_t>(r);
  }
  ::close(fd);
  bytes.resize(done);
  return bytes;
}

Status AdapterStore::fsync_dir() const {
  const int fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_error("open directory", dir_, errno);
  // The rename or unlink is durable only once the directory entry is.
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  return rc == 0 ? Status::ok() : io_error("fsync directory", dir_, err);
}

}  // namespace hotswap
