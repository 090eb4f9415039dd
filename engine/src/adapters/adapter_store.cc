#include "adapters/adapter_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <system_error>

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

AdapterStore::AdapterStore(std::string dir) : dir_(std::move(dir)) {
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
}

std::string AdapterStore::path_of(std::string_view name, AdapterEncoding encoding) const {
  return dir_ + "/" + std::string(name) + adapter_file_extension(encoding);
}

AdapterDirectoryScan AdapterStore::scan() const {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw LoadError(dir_, "cannot create the adapter directory: " + ec.message());

  AdapterDirectoryScan scan;
  std::map<std::string, std::vector<StoredAdapterFile>> by_name;
  fs::directory_iterator it(dir_, ec);
  if (ec) throw LoadError(dir_, "cannot list the adapter directory: " + ec.message());
  for (const fs::directory_entry& entry : it) {
    const std::string file = entry.path().filename().string();
    const std::string path = entry.path().string();
    if (file.starts_with(".") && file.ends_with(kTempSuffix)) {
      // Only a killed upload leaves one: write() removes its own on failure.
      if (::unlink(path.c_str()) == 0 || errno == ENOENT) {
        scan.removed_temp_files.push_back(path);
      } else {
        scan.skipped.push_back(path + ": leftover temporary file could not be removed: " + errno_text(errno));
      }
      continue;
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      scan.skipped.push_back(path + ": cannot stat: " + errno_text(errno));
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
    by_name[found.name].push_back(std::move(found));
  }

  bool removed_any = false;
  for (auto& [name, files] : by_name) {
    if (files.size() > 1) {
      std::sort(files.begin(), files.end(),
                [](const StoredAdapterFile& a, const StoredAdapterFile& b) { return a.mtime_ns > b.mtime_ns; });
      for (size_t i = 1; i < files.size(); ++i) {
        ::unlink(files[i].path.c_str());
        removed_any = true;
        scan.skipped.push_back(files[i].path + ": older than " + files[0].path + " (a replacement was interrupted); removed");
      }
    }
    scan.adapters.push_back(std::move(files[0]));
  }
  if (removed_any || !scan.removed_temp_files.empty()) {
    if (Status s = fsync_dir(); !s) scan.skipped.push_back(dir_ + ": " + s.message());
  }
  return scan;
}

Status AdapterStore::write(std::string_view name, AdapterEncoding encoding, std::string_view bytes,
                           int64_t mtime_ns) const {
  const std::string final_path = path_of(name, encoding);
  // A leading dot keeps the temporary file out of the adapter namespace (names start with a
  // letter or digit), so scan() can tell leftovers apart by their name alone.
  const std::string tmp_path = dir_ + "/." + std::string(name) + "." + random_suffix() + std::string(kTempSuffix);

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
  if (::close(fd) != 0) return fail(io_error("close", tmp_path, errno), false);
  if (::rename(tmp_path.c_str(), final_path.c_str()) != 0) {
    return fail(io_error("rename into place", final_path, errno), false);
  }
  const AdapterEncoding other = encoding == AdapterEncoding::kJson ? AdapterEncoding::kSafetensors : AdapterEncoding::kJson;
  const std::string other_path = path_of(name, other);
  if (::unlink(other_path.c_str()) != 0 && errno != ENOENT) return io_error("remove", other_path, errno);
  return fsync_dir();
}

Status AdapterStore::remove(std::string_view name) const {
  for (AdapterEncoding e : {AdapterEncoding::kJson, AdapterEncoding::kSafetensors}) {
    const std::string path = path_of(name, e);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return io_error("remove", path, errno);
  }
  return fsync_dir();
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
