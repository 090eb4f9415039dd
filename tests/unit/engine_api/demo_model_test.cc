// ensure_demo_model() when processes start together on one cache (ctest's parallel tests,
// servers started side by side): every process must find a complete model of this binary's
// version every time it looks, also while the others are still publishing theirs.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "engine/demo_model.h"

namespace hotswap {
namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// What a reader checks: the directory holds this version's model (its files open, the
// weights are whole), not an older one and not nothing.
bool complete(const fs::path& dir) {
  std::error_code ec;
  const auto weights = fs::file_size(dir / "model.safetensors", ec);
  return !ec && weights > 1000000 && read_file(dir / "hotswap-demo-version") == embedded_demo_model_version() &&
         read_file(dir / "config.json").find("num_hidden_layers") != std::string::npos;
}

// ctest runs each test in a process of its own, so no other thread exists at fork(); run
// with the whole binary, the children still use only what glibc keeps safe across fork()
// (malloc, files). Each child reports the directory it was given (its
// inode) through a pipe: once one process has published this version, later ones must keep
// it, not swap in their own copy (a reader of the first would lose its files for a moment:
// ctest once failed so, "demo-model/config.json: cannot open").
TEST(DemoModel, ProcessesStartingTogetherOnAnOlderCacheAllGetTheFirstPublishedModel) {
  const fs::path cache = fs::path(HOTSWAP_BINARY_DIR) / ("demo_model_race_" + std::to_string(::getpid()));
  constexpr int kProcesses = 3;
  fs::remove_all(cache);
  fs::create_directories(cache / "demo-model");  // an older binary's model: it must be replaced
  std::ofstream(cache / "demo-model" / "hotswap-demo-version") << "older";
  std::ofstream(cache / "demo-model" / "model.safetensors") << "older weights";
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      uint64_t inode = 0;
      try {
        const fs::path dir = ensure_demo_model(cache.string());
        struct stat st {};
        if (complete(dir) && ::stat(dir.c_str(), &st) == 0) inode = st.st_ino;
        // Still complete while the others finish theirs.
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
        while (inode != 0 && std::chrono::steady_clock::now() < until)
          if (!complete(dir)) inode = 0;
      } catch (...) {
        inode = 0;
      }
      ::_exit(::write(fds[1], &inode, sizeof inode) == sizeof inode ? 0 : 1);
    }
    children.push_back(pid);
  }
  ::close(fds[1]);
  std::vector<uint64_t> inodes;
  for (uint64_t inode = 0; ::read(fds[0], &inode, sizeof inode) == sizeof inode;) inodes.push_back(inode);
  ::close(fds[0]);
  for (const pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  ASSERT_EQ(inodes.size(), static_cast<size_t>(kProcesses));
  struct stat final_dir {};
  ASSERT_EQ(::stat((cache / "demo-model").c_str(), &final_dir), 0);
  EXPECT_TRUE(complete(cache / "demo-model"));
  for (size_t i = 0; i < inodes.size(); ++i) {
    EXPECT_NE(inodes[i], 0u) << "process " << i << " found no complete model of this version";
    EXPECT_EQ(inodes[i], static_cast<uint64_t>(final_dir.st_ino))
        << "process " << i << " was given a directory that another process then replaced";
  }
  for (const auto& entry : fs::directory_iterator(cache))  // nothing left behind but the model
    EXPECT_EQ(entry.path().filename(), "demo-model") << "left behind: " << entry.path();
  fs::remove_all(cache);
}

}  // namespace
}  // namespace hotswap
