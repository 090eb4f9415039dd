// kill -9 in the middle of an upload: after a restart the adapter is the old version or
// absent, never torn. A forked child uploads through the real AdapterRegistry::put; the
// parent kills it with SIGKILL, then loads the directory the way a restarted server does.
#include <gtest/gtest.h>
#include <signal.h>
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

TEST(AdapterRegistryCrash, KillDuringTheFileWriteLeavesTheOldVersion) {
  constexpr size_t kBig = 48u << 20;
  const std::string old_doc = mixed_doc(1);
  const std::string new_doc = padded_doc(2, kBig);
  bool killed_mid_write = false;
  for (int attempt = 0; attempt < 8 && !killed_mid_write; ++attempt) {
    TempDir dir;
    {
      AdapterRegistry r(test_shape(), "", dir.path(), kBudget);
      ASSERT_TRUE(r.put("victim", old_doc, AdapterEncoding::kJson).is_ok());
    }
    const pid_t child = fork_uploader([&] {
      AdapterRegistry r(test_shape(), "", dir.path(), kBudget);
      r.load_directory();
      (void)r.put("victim", new_doc, AdapterEncoding::kJson);
    });
    ASSERT_GT(child, 0);
    // Kill as soon as the temporary file is partly written.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    int64_t seen = -1;
    while (std::chrono::steady_clock::now() < deadline) {
      seen = victim_temp_size(dir.path());
      if (seen > 0 && seen < static_cast<int64_t>(kBig)) break;
      if (::waitpid(child, nullptr, WNOHANG) == child) break;  // finished before we saw it
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    kill_and_reap(child);
    killed_mid_write = seen > 0 && seen < static_cast<int64_t>(kBig);

    const std::string digest = victim_after_restart(dir.path());
    if (killed_mid_write) {
      EXPECT_EQ(digest, sha256_hex(old_doc)) << "killed with " << seen << " of " << kBig << " bytes written";
    } else {
      EXPECT_TRUE(digest == sha256_hex(old_doc) || digest == sha256_hex(new_doc));
    }
  }
  EXPECT_TRUE(killed_mid_write) << "never caught the upload in the middle of its write";
}

TEST(AdapterRegistryCrash, KillAtRandomMomentsNeverLeavesATornAdapter) {
  const std::vector<std::string> docs = {padded_doc(3, 2u << 20), padded_doc(4, 1u << 20), padded_doc(5, 512u << 10)};
  std::set<std::string> valid = {""};  // absent is allowed for a first upload killed early
  for (const std::string& d : docs) valid.insert(sha256_hex(d));

  TempDir dir;
  std::mt19937 rng(12345);
  std::set<std::string> outcomes;
  for (int round = 0; round < 16; ++round) {
    const pid_t child = fork_uploader([&] {
      AdapterRegistry r(test_shape(), "", dir.path(), kBudget);
      r.load_directory();
      for (size_t i = 0;; ++i) (void)r.put("victim", docs[i % docs.size()], AdapterEncoding::kJson);
    });
    ASSERT_GT(child, 0);
    std::this_thread::sleep_for(std::chrono::microseconds(2000 + rng() % 250000));
    kill_and_reap(child);
    const std::string digest = victim_after_restart(dir.path());
    EXPECT_TRUE(valid.count(digest)) << "round " << round << ": unexpected digest '" << digest << "'";
    outcomes.insert(digest);
  }
  // Sanity: the kills did land after some uploads completed.
  EXPECT_GE(outcomes.size(), 2u) << "every kill found the same state: " << *outcomes.begin();
}

}  // namespace
}  // namespace hotswap
