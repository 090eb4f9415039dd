// kill -9 in the middle of an upload: after a restart the adapter is the old version or
// absent, never torn. A forked child uploads through the real AdapterRegistry::put; the
// parent kills it with SIGKILL, then loads the directory the way a restarted server does.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <set>
#include <thread>

#include "adapters/adapter_registry.h"
#include "adapters/sha256.h"
#include "test_adapters.h"

namespace hotswap {
namespace {

using testing::mixed_doc;
using testing::read_file;
using testing::TempDir;
using testing::temp_files_in;
using testing::test_shape;

constexpr int64_t kBudget = 1 << 30;

// A valid adapter document of about `bytes` bytes: JSON allows any amount of whitespace.
std::string padded_doc(int seed, size_t bytes) {
  std::string doc = mixed_doc(seed);
  doc.append(bytes > doc.size() ? bytes - doc.size() : 0, ' ');
  return doc;
}

// Forks a child that runs `upload` (never returning), for the parent to kill.
template <typename F>
pid_t fork_uploader(F upload) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    upload();
    ::_exit(0);
  }
  return pid;
}

void kill_and_reap(pid_t pid) {
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
}

// The state a restarted server sees for "victim": its sha256, or "" if absent.
std::string victim_after_restart(const std::string& dir) {
  AdapterRegistry restarted(test_shape(), "", dir, kBudget);
  restarted.load_directory();
  EXPECT_TRUE(temp_files_in(dir).empty());
  Result<AdapterInfo> info = restarted.get("victim");
  if (!info.is_ok()) return "";
  // The file holds exactly the registered bytes.
  EXPECT_EQ(sha256_hex(read_file(dir + "/victim.json")), info->sha256);
  EXPECT_TRUE(restarted.pin("victim").is_ok());
  return info->sha256;
}

// Largest size of a temporary file of "victim" seen right now, or -1 if there is none.
int64_t victim_temp_size(const std::string& dir) {
  int64_t best = -1;
  for (const std::string& f : temp_files_in(dir)) {
    if (!f.starts_with(".victim.")) continue;
    struct stat st {};
    if (::stat((dir + "/" + f).c_str(), &st) == 0) best = std::max<int64_t>(best, st.st_size);
  }
  return best;
}

// SIGXFSZ handler of the uploader: turn "the file reached its size limit" into kill -9.
void sigkill_self(int) { ::kill(::getpid(), SIGKILL); }

// The upload dies of SIGKILL at an exact point of its file write, with no polling and no
// race between the writer and the killer: in the child, RLIMIT_FSIZE = `limit` makes the first
// write() past `limit` bytes raise SIGXFSZ, whose handler SIGKILLs the process. So the kill
// lands with exactly `limit` of the 48 MiB written to the temporary file, before its fsync
// and rename, every time, however loaded the machine is.
TEST(AdapterRegistryCrash, KillDuringTheFileWriteLeavesTheOldVersion) {
  constexpr size_t kBig = 48u << 20;
  const std::string old_doc = mixed_doc(1);
  const std::string new_doc = padded_doc(2, kBig);
  // The first byte, a page, just past the first 1 MiB write() call, a third, one byte short.
  for (const size_t limit : {size_t{1}, size_t{4096}, (size_t{1} << 20) + 1, kBig / 3, kBig - 1}) {
    TempDir dir;
    {
      AdapterRegistry r(test_shape(), "", dir.path(), kBudget);
      ASSERT_TRUE(r.put("victim", old_doc, AdapterEncoding::kJson).is_ok());
    }
    const pid_t child = fork_uploader([&] {
      AdapterRegistry r(test_shape(), "", dir.path(), kBudget);
      r.load_directory();
      // Logs go to /dev/null (not a regular file, so not limited); no core file.
      const int null_fd = ::open("/dev/null", O_WRONLY);
      ::dup2(null_fd, STDOUT_FILENO);
      ::dup2(null_fd, STDERR_FILENO);
      struct sigaction sa {};
      sa.sa_handler = sigkill_self;
      ::sigaction(SIGXFSZ, &sa, nullptr);
      const struct rlimit no_core {0, 0};
      ::setrlimit(RLIMIT_CORE, &no_core);
      const struct rlimit fsize {static_cast<rlim_t>(limit), static_cast<rlim_t>(limit)};
      ::setrlimit(RLIMIT_FSIZE, &fsize);
      (void)r.put("victim", new_doc, AdapterEncoding::kJson);
      ::_exit(3);  // put() returned: the kill never came
    });
    ASSERT_GT(child, 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "limit " << limit << ": the upload was not killed during its write (wait status " << status << ")";
    // What the kill left: the temporary file with exactly `limit` bytes, the old file intact.
    EXPECT_EQ(victim_temp_size(dir.path()), static_cast<int64_t>(limit)) << "limit " << limit;
    EXPECT_EQ(sha256_hex(read_file(dir.path() + "/victim.json")), sha256_hex(old_doc)) << "limit " << limit;
    // A restart removes the temporary file and serves the old version.
    EXPECT_EQ(victim_after_restart(dir.path()), sha256_hex(old_doc))
        << "killed with " << limit << " of " << kBig << " bytes written";
  }
}

// Kills land at random moments of the upload loop, measured in the child's own progress (not
// wall-clock time, which a sanitizer build on a loaded machine stretches arbitrarily): the child
// reports each completed put() on a pipe; the parent waits for a random number of them, then
// for a random fraction of one put()'s duration, and kills.
TEST(AdapterRegistryCrash, KillAtRandomMomentsNeverLeavesATornAdapter) {
  const std::vector<std::string> docs = {padded_doc(3, 2u << 20), padded_doc(4, 1u << 20), padded_doc(5, 512u << 10)};
  std::set<std::string> valid = {""};  // absent is allowed for a first upload killed early
  for (const std::string& d : docs) valid.insert(sha256_hex(d));

  TempDir dir;
  std::mt19937 rng(12345);
  std::set<std::string> outcomes;
  for (int round = 0; round < 16; ++round) {
    int done[2];
    ASSERT_EQ(::pipe(done), 0);
    const pid_t child = fork_uploader([&] {
      ::close(done[0]);
      AdapterRegistry r(test_shape(), "", dir.path(), kBudget);
      r.load_directory();
      for (size_t i = 0;; ++i) {
        (void)r.put("victim", docs[i % docs.size()], AdapterEncoding::kJson);
        const char byte = 1;
        if (::write(done[1], &byte, 1) != 1) ::_exit(4);
      }
    });
    ASSERT_GT(child, 0);
    ::close(done[1]);
    const int completed = static_cast<int>(rng() % 4);
    auto last = std::chrono::steady_clock::now();
    std::chrono::steady_clock::duration one_put{};
    for (int i = 0; i < completed; ++i) {
      char byte;
      ASSERT_EQ(::read(done[0], &byte, 1), 1) << "round " << round << ": the uploader died by itself";
      const auto now = std::chrono::steady_clock::now();
      one_put = now - last;
      last = now;
    }
    if (completed > 0) std::this_thread::sleep_for(one_put * static_cast<int>(rng() % 100) / 100);
    kill_and_reap(child);
    ::close(done[0]);
    const std::string digest = victim_after_restart(dir.path());
    EXPECT_TRUE(valid.count(digest)) << "round " << round << ": unexpected digest '" << digest << "'";
    outcomes.insert(digest);
  }
  // Sanity: the kills did land after different numbers of completed uploads.
  EXPECT_GE(outcomes.size(), 2u) << "every kill found the same state: " << *outcomes.begin();
}

}  // namespace
}  // namespace hotswap
