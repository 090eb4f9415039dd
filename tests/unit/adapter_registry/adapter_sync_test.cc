// Several AdapterRegistry instances over one adapter directory: what replicas of `hotswap
// serve` sharing a volume do (issue 15, docs/adapters-shared-dir.md). Uploads, replacements
// and deletions made through one are seen by the others after a rescan (called directly, or
// run by the watcher thread on an inotify event or its period), adapters found that way are
// loaded on first use, pinned versions survive, and every registry lists the same adapters
// with the same sha256. Concurrent writers in separate processes (fork) never leave a torn or
// mixed file, and a starting registry removes only temporary files that are provably
// abandoned.
#include <gtest/gtest.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "adapters/adapter_registry.h"
#include "adapters/adapter_store.h"
#include "adapters/sha256.h"
#include "test_adapters.h"

namespace hotswap {
namespace {

using namespace std::chrono_literals;
using testing::mixed_doc;
using testing::nsa_json_doc;
using testing::nsa_safetensors_doc;
using testing::read_file;
using testing::TempDir;
using testing::temp_files_in;
using testing::test_shape;
using testing::write_file;

constexpr int64_t kBudget = 1 << 30;

std::unique_ptr<AdapterRegistry> replica(const std::string& dir, AdapterSyncOptions sync = {},
                                         int64_t budget = kBudget) {
  auto r = std::make_unique<AdapterRegistry>(test_shape(), "", dir, budget, sync);
  r->load_directory();
  return r;
}

// GET /v1/adapters as replicas must agree on it: everything but `resident`, which is each
// process's own memory.
std::vector<std::string> described(const AdapterRegistry& r) {
  std::vector<std::string> out;
  for (const AdapterInfo& i : r.list()) {
    out.push_back(i.name + " " + i.type + " layers=" + std::to_string(i.layers) + " " + i.parameters_json +
                  " bytes=" + std::to_string(i.bytes) + " sha256=" + i.sha256 + " created=" +
                  std::to_string(i.created) + " " + i.description);
  }
  return out;
}

std::string sha_of(const AdapterRegistry& r, const std::string& name) {
  Result<AdapterInfo> info = r.get(name);
  return info.is_ok() ? info->sha256 : "";
}

// Polls `done` every millisecond for at most `bound`; returns how long it took, or bound + 1 ms.
template <typename F>
std::chrono::milliseconds time_until(F done, std::chrono::milliseconds bound) {
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    if (done()) return waited;
    if (waited > bound) return bound + 1ms;
    std::this_thread::sleep_for(1ms);
  }
}

TEST(AdapterReplicas, AnUploadOnOneIsSeenByAnotherAfterARescanAndLoadedOnFirstUse) {
  TempDir dir;
  auto a = replica(dir.path());
  auto b = replica(dir.path());
  const std::string doc = mixed_doc(1);
  ASSERT_TRUE(a->put("x", doc, AdapterEncoding::kJson).is_ok());
  EXPECT_EQ(b->get("x").status().code(), StatusCode::kNotFound) << "b has not looked yet";

  const AdapterRescanSummary s = b->rescan();
  EXPECT_EQ(s.added, 1);
  EXPECT_EQ(s.replaced + s.removed + s.rejected, 0);
  Result<AdapterInfo> info = b->get("x");
  ASSERT_TRUE(info.is_ok());
  EXPECT_EQ(info->sha256, sha256_hex(doc));
  EXPECT_FALSE(info->resident) << "found by a rescan: not loaded until first use";
  EXPECT_EQ(b->stats().resident, 0);
  EXPECT_EQ(b->stats().registered, 1);
  EXPECT_EQ(described(*a), described(*b));

  Result<std::shared_ptr<const Adapter>> pinned = b->pin("x");
  ASSERT_TRUE(pinned.is_ok()) << pinned.status().message();
  EXPECT_EQ((*pinned)->sha256(), sha256_hex(doc));
  EXPECT_TRUE(b->get("x")->resident);
  EXPECT_FALSE(b->rescan().changed()) << "nothing changed since";
  EXPECT_FALSE(a->rescan().changed()) << "a's own upload is not news to a";
  EXPECT_EQ(described(*a), described(*b));
}

TEST(AdapterReplicas, APinOrADeleteOfANameNotSeenYetLooksInTheDirectory) {
  TempDir dir;
  auto a = replica(dir.path());
  auto b = replica(dir.path());
  ASSERT_TRUE(a->put("x", mixed_doc(1), AdapterEncoding::kJson).is_ok());
  ASSERT_TRUE(a->put("y", mixed_doc(2), AdapterEncoding::kJson).is_ok());
  // No rescan on b: the pin finds the file anyway.
  Result<std::shared_ptr<const Adapter>> pinned = b->pin("x");
  ASSERT_TRUE(pinned.is_ok()) << pinned.status().message();
  EXPECT_EQ((*pinned)->sha256(), sha256_hex(mixed_doc(1)));
  EXPECT_TRUE(b->get("x").is_ok());
  // And a delete of an adapter b has never seen deletes its file.
  EXPECT_TRUE(b->remove("y").is_ok());
  EXPECT_FALSE(std::filesystem::exists(dir.file("y.json")));
  EXPECT_EQ(a->rescan().removed, 1);
  EXPECT_EQ(a->get("y").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(b->remove("y").code(), StatusCode::kNotFound);
  EXPECT_EQ(b->pin("nope").status().code(), StatusCode::kNotFound);
}

TEST(AdapterReplicas, AReplacementKeepsPinnedVersionsAndNewPinsGetTheNewOne) {
  TempDir dir;
  auto a = replica(dir.path());
  auto b = replica(dir.path());
  const std::string v1 = mixed_doc(1), v2 = mixed_doc(2), v3 = mixed_doc(3);
  ASSERT_TRUE(a->put("x", v1, AdapterEncoding::kJson).is_ok());
  b->rescan();
  Result<std::shared_ptr<const Adapter>> old = b->pin("x");
  ASSERT_TRUE(old.is_ok());

  Result<AdapterPutResult> replaced = a->put("x", v2, AdapterEncoding::kJson);
  ASSERT_TRUE(replaced.is_ok());
  EXPECT_FALSE(replaced->created);
  const AdapterRescanSummary s = b->rescan();
  EXPECT_EQ(s.replaced, 1);
  EXPECT_EQ(sha_of(*b, "x"), sha256_hex(v2));
  Result<std::shared_ptr<const Adapter>> now = b->pin("x");
  ASSERT_TRUE(now.is_ok());
  EXPECT_EQ((*now)->sha256(), sha256_hex(v2));
  // The request that pinned v1 still holds v1, parameters and all.
  EXPECT_EQ((*old)->sha256(), sha256_hex(v1));
  ASSERT_TRUE((*old)->mixed());
  EXPECT_NE((*old)->mixed()->gates, (*now)->mixed()->gates);
  EXPECT_EQ(described(*a), described(*b));

  // Found by a rescan (not loaded), then replaced before its first use: the first pin loads
  // what the file holds now, not an error about a changed file.
  auto c = replica(dir.path());
  auto d = replica(dir.path());
  ASSERT_TRUE(a->put("z", v1, AdapterEncoding::kJson).is_ok());
  d->rescan();
  ASSERT_TRUE(d->get("z").is_ok());
  EXPECT_FALSE(d->get("z")->resident);
  ASSERT_TRUE(c->put("z", v3, AdapterEncoding::kJson).is_ok());
  Result<std::shared_ptr<const Adapter>> first = d->pin("z");
  ASSERT_TRUE(first.is_ok()) << first.status().message();
  EXPECT_EQ((*first)->sha256(), sha256_hex(v3));
  EXPECT_EQ(sha_of(*d, "z"), sha256_hex(v3));
}

TEST(AdapterReplicas, AnEvictedAdapterReplacedElsewhereReloadsAsTheNewVersion) {
  TempDir dir;
  // A budget that holds one adapter: the second upload evicts the first.
  const size_t one = adapter_resident_bytes(**parse_adapter_document(mixed_doc(1), AdapterEncoding::kJson, test_shape(), "x"));
  auto a = replica(dir.path());
  auto b = replica(dir.path(), {}, static_cast<int64_t>(one) + 16);
  ASSERT_TRUE(b->put("x", mixed_doc(1), AdapterEncoding::kJson).is_ok());
  ASSERT_TRUE(b->put("w", mixed_doc(9), AdapterEncoding::kJson).is_ok());
  ASSERT_FALSE(b->get("x")->resident);
  ASSERT_TRUE(a->put("x", mixed_doc(2), AdapterEncoding::kJson).is_ok());  // another replica replaces it
  Result<std::shared_ptr<const Adapter>> pinned = b->pin("x");
  ASSERT_TRUE(pinned.is_ok()) << pinned.status().message();
  EXPECT_EQ((*pinned)->sha256(), sha256_hex(mixed_doc(2)));
  EXPECT_EQ(sha_of(*b, "x"), sha256_hex(mixed_doc(2)));
  // Evicted again and then deleted elsewhere: a 404, and the name is gone.
  pinned = Status::not_found("released");  // the request that pinned it has finished
  ASSERT_TRUE(b->pin("w").is_ok());
  ASSERT_TRUE(a->put("v", mixed_doc(4), AdapterEncoding::kJson).is_ok());
  ASSERT_TRUE(b->pin("v").is_ok());
  ASSERT_FALSE(b->get("x")->resident);
  ASSERT_TRUE(a->remove("x").is_ok());
  EXPECT_EQ(b->pin("x").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(b->get("x").status().code(), StatusCode::kNotFound);
}

TEST(AdapterReplicas, ADeletionIsSeenAndPinnedVersionsSurviveIt) {
  TempDir dir;
  auto a = replica(dir.path());
  auto b = replica(dir.path());
  ASSERT_TRUE(a->put("x", mixed_doc(1), AdapterEncoding::kJson).is_ok());
  ASSERT_TRUE(a->put("keep", mixed_doc(2), AdapterEncoding::kJson).is_ok());
  b->rescan();
  Result<std::shared_ptr<const Adapter>> pinned = b->pin("x");
  ASSERT_TRUE(pinned.is_ok());
  ASSERT_TRUE(a->remove("x").is_ok());
  EXPECT_EQ(b->rescan().removed, 1);
  EXPECT_EQ(b->get("x").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(b->pin("x").status().code(), StatusCode::kNotFound);
  EXPECT_EQ((*pinned)->sha256(), sha256_hex(mixed_doc(1)));
  EXPECT_FALSE((*pinned)->mixed()->gates.empty());
  EXPECT_EQ(described(*a), described(*b));
  ASSERT_EQ(b->list().size(), 1u);

  // Found but never used, then deleted: the pin says 404 even before a rescan.
  auto c = replica(dir.path());
  ASSERT_TRUE(a->put("y", mixed_doc(3), AdapterEncoding::kJson).is_ok());
  c->rescan();
  ASSERT_TRUE(a->remove("y").is_ok());
  EXPECT_EQ(c->pin("y").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(c->get("y").status().code(), StatusCode::kNotFound);
}

TEST(AdapterReplicas, EncodingChangesAndFilesThatAreNotAdapters) {
  TempDir dir;
  auto a = replica(dir.path());
  auto b = replica(dir.path());
  ASSERT_TRUE(a->put("x", mixed_doc(1), AdapterEncoding::kJson).is_ok());
  b->rescan();
  const std::string st = nsa_safetensors_doc(5);
  ASSERT_TRUE(a->put("x", st, AdapterEncoding::kSafetensors).is_ok());
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.json")));
  EXPECT_EQ(b->rescan().replaced, 1);
  EXPECT_EQ(b->get("x")->type, "nsa");
  EXPECT_EQ(sha_of(*b, "x"), sha256_hex(st));
  ASSERT_TRUE(b->pin("x").is_ok());

  // Garbage put there by hand: not listed, reported once, a 404 on use.
  write_file(dir.file("bad.json"), "{ this is not an adapter");
  EXPECT_EQ(b->rescan().rejected, 1);
  EXPECT_EQ(b->rescan().rejected, 0) << "reported once per version of the file";
  EXPECT_EQ(b->get("bad").status().code(), StatusCode::kNotFound);
  Result<std::shared_ptr<const Adapter>> bad = b->pin("bad");
  EXPECT_EQ(bad.status().code(), StatusCode::kNotFound);
  EXPECT_NE(bad.status().message().find("not a valid adapter"), std::string::npos) << bad.status().message();
  // A valid adapter's file replaced with garbage: the name goes, as on a replica that starts now.
  write_file(dir.file(".tmp-garbage"), "[]");
  std::filesystem::rename(dir.file(".tmp-garbage"), dir.file("x.safetensors"));
  EXPECT_EQ(b->rescan().removed, 1);
  EXPECT_EQ(b->get("x").status().code(), StatusCode::kNotFound);
  auto c = replica(dir.path());
  EXPECT_EQ(described(*b), described(*c));
  // Uploading a valid document again brings it back everywhere.
  ASSERT_TRUE(a->put("x", nsa_json_doc(6), AdapterEncoding::kJson).is_ok());
  EXPECT_EQ(b->rescan().added, 1);
  EXPECT_EQ(sha_of(*b, "x"), sha256_hex(nsa_json_doc(6)));
}

TEST(AdapterReplicas, TheWatcherSeesChangesThroughInotifyWithinMilliseconds) {
  TempDir dir;
  auto a = replica(dir.path());
  // A period far beyond the bound checked here: only inotify can explain a fast update.
  auto b = replica(dir.path(), {.rescan_ms = 600'000, .inotify = true});
  constexpr auto kBound = 2000ms;
  ASSERT_TRUE(a->put("x", mixed_doc(1), AdapterEncoding::kJson).is_ok());
  auto took = time_until([&] { return sha_of(*b, "x") == sha256_hex(mixed_doc(1)); }, kBound);
  EXPECT_LE(took, kBound) << "upload not seen";
  ASSERT_TRUE(a->put("x", mixed_doc(2), AdapterEncoding::kJson).is_ok());
  took = time_until([&] { return sha_of(*b, "x") == sha256_hex(mixed_doc(2)); }, kBound);
  EXPECT_LE(took, kBound) << "replacement not seen";
  ASSERT_TRUE(a->remove("x").is_ok());
  took = time_until([&] { return !b->get("x").is_ok(); }, kBound);
  EXPECT_LE(took, kBound) << "deletion not seen";
  EXPECT_TRUE(b->list().empty());
}

TEST(AdapterReplicas, ThePeriodicRescanAloneFindsChanges) {
  TempDir dir;
  auto a = replica(dir.path());
  auto b = replica(dir.path(), {.rescan_ms = 100, .inotify = false});
  constexpr auto kBound = 5000ms;  // 100 ms period + a loaded machine (sanitizers, parallel ctest)
  const uint64_t before = b->rescans_completed();
  ASSERT_TRUE(a->put("x", mixed_doc(1), AdapterEncoding::kJson).is_ok());
  EXPECT_LE(time_until([&] { return b->get("x").is_ok(); }, kBound), kBound);
  ASSERT_TRUE(a->remove("x").is_ok());
  EXPECT_LE(time_until([&] { return !b->get("x").is_ok(); }, kBound), kBound);
  // A rescan applies its changes before it counts itself as completed: wait for the count too.
  EXPECT_LE(time_until([&] { return b->rescans_completed() >= before + 2; }, kBound), kBound);
}

TEST(AdapterReplicas, AReplicaThatStartsLaterSeesEverything) {
  TempDir dir;
  auto a = replica(dir.path());
  auto b = replica(dir.path());
  for (const char* n : {"n0", "n1", "n2", "n3", "n4", "n5"}) {
    ASSERT_TRUE(a->put(n, mixed_doc(n[1] - '0'), AdapterEncoding::kJson).is_ok());
  }
  ASSERT_TRUE(b->put("n1", mixed_doc(11), AdapterEncoding::kJson).is_ok());
  ASSERT_TRUE(b->put("s", nsa_safetensors_doc(2), AdapterEncoding::kSafetensors).is_ok());
  ASSERT_TRUE(b->remove("n2").is_ok());
  a->rescan();
  b->rescan();
  auto late = replica(dir.path());
  EXPECT_EQ(described(*late), described(*a));
  EXPECT_EQ(described(*late), described(*b));
  EXPECT_EQ(late->list().size(), 6u);
  EXPECT_EQ(sha_of(*late, "n1"), sha256_hex(mixed_doc(11)));
}

TEST(AdapterStoreCompareAndDelete, RemovesOnlyTheFileItWasToldAbout) {
  TempDir dir;
  AdapterStore store(dir.path());
  Result<AdapterWriteResult> first = store.write("x", AdapterEncoding::kJson, "one", 1'000'000'000);
  ASSERT_TRUE(first.is_ok());
  EXPECT_FALSE(first->replaced);
  Result<AdapterWriteResult> second = store.write("x", AdapterEncoding::kJson, "two", 2'000'000'000);
  ASSERT_TRUE(second.is_ok());
  EXPECT_TRUE(second->replaced);
  EXPECT_NE(first->file.signature, second->file.signature);
  // Told about the first file, which another write has replaced since: the second stays.
  EXPECT_FALSE(store.remove_if_unchanged("x", dir.file("x.json"), first->file.signature));
  EXPECT_EQ(read_file(dir.file("x.json")), "two");
  EXPECT_TRUE(temp_files_in(dir.path()).empty());
  EXPECT_TRUE(store.remove_if_unchanged("x", dir.file("x.json"), second->file.signature));
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.json")));
  EXPECT_TRUE(temp_files_in(dir.path()).empty());

  // Two encodings of one name: every reader takes the later upload; a write of the older one
  // removes its own file instead of the newer one.
  ASSERT_TRUE(store.write("y", AdapterEncoding::kSafetensors, "new", 5'000'000'000).is_ok());
  ASSERT_TRUE(store.write("y", AdapterEncoding::kJson, "late but older", 4'000'000'000).is_ok());
  EXPECT_TRUE(std::filesystem::exists(dir.file("y.safetensors")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("y.json")));
  Result<AdapterFileContents> current = store.read_current("y");
  ASSERT_TRUE(current.is_ok());
  EXPECT_EQ(current->bytes, "new");
  EXPECT_EQ(current->file.encoding, AdapterEncoding::kSafetensors);
  EXPECT_EQ(store.read_current("none").status().code(), StatusCode::kNotFound);
}

TEST(AdapterStoreTempFiles, OnlyProvablyAbandonedTemporaryFilesAreRemoved) {
  TempDir dir;
  AdapterStore store(dir.path());
  // A live process of this host, blocked on a pipe: its upload is in progress.
  int owner_pipe[2], release_pipe[2];
  ASSERT_EQ(::pipe(owner_pipe), 0);
  ASSERT_EQ(::pipe(release_pipe), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    const std::string owner = temp_file_owner();
    (void)!::write(owner_pipe[1], owner.data(), owner.size());
    ::close(owner_pipe[1]);
    ::close(release_pipe[1]);
    char c;
    (void)!::read(release_pipe[0], &c, 1);
    ::_exit(0);
  }
  ::close(owner_pipe[1]);
  ::close(release_pipe[0]);
  char buf[256];
  const ssize_t n = ::read(owner_pipe[0], buf, sizeof buf);
  ASSERT_GT(n, 0);
  ::close(owner_pipe[0]);
  const std::string child_owner(buf, static_cast<size_t>(n));

  const std::string live_child = ".a." + child_owner + "-0000000000000001.tmp";
  const std::string live_self = ".b." + temp_file_owner() + "-0000000000000002.tmp";
  const std::string dead = ".c." + testing::dead_process_owner() + "-0000000000000003.tmp";
  const std::string foreign = ".d.0123456789abcdef-1-1-0000000000000004.tmp";  // another host's writer
  const std::string legacy = ".e.00000000000000ff.tmp";                          // no writer named
  // This host and pid but another start time: the pid was reused, the writer is gone.
  std::string reused = temp_file_owner();
  reused = reused.substr(0, reused.rfind('-')) + "-1";
  const std::string reused_pid = ".f." + reused + "-0000000000000005.tmp";
  for (const std::string& f : {live_child, live_self, dead, foreign, legacy, reused_pid}) write_file(dir.file(f), "partial");

  AdapterDirectoryScan scan = store.scan();
  EXPECT_EQ(scan.removed_temp_files.size(), 2u);
  EXPECT_EQ(scan.kept_temp_files, 4);
  std::set<std::string> left;
  for (const std::string& f : temp_files_in(dir.path())) left.insert(f);
  EXPECT_EQ(left, (std::set<std::string>{live_child, live_self, foreign, legacy}));
  // A replica starting now leaves them alone too.
  replica(dir.path());
  EXPECT_EQ(temp_files_in(dir.path()).size(), 4u);

  // The child exits (reaped): its file is abandoned now.
  ::close(release_pipe[1]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  scan = store.scan();
  ASSERT_EQ(scan.removed_temp_files.size(), 1u);
  EXPECT_NE(scan.removed_temp_files[0].find(live_child), std::string::npos);
  EXPECT_NE(scan.removed_temp_files[0].find("no longer exists"), std::string::npos) << scan.removed_temp_files[0];

  // The age rule, for files whose writer cannot be checked (and as a backstop for all).
  const int64_t now = int64_t{1'800'000'000} * 1'000'000'000;  // any fixed "now"
  const int64_t s = 1'000'000'000;
  EXPECT_EQ(abandoned_temp_reason(foreign, now - 600 * s, now), "");
  EXPECT_EQ(abandoned_temp_reason(legacy, now - 600 * s, now), "");
  EXPECT_NE(abandoned_temp_reason(foreign, now - (kAbandonedTempFileAgeS + 1) * s, now), "");
  EXPECT_NE(abandoned_temp_reason(legacy, now - (kAbandonedTempFileAgeS + 1) * s, now), "");
  EXPECT_EQ(abandoned_temp_reason(live_self, now - 600 * s, now), "");
  EXPECT_NE(abandoned_temp_reason(live_self, now - (kAbandonedTempFileAgeS + 1) * s, now), "");
}

// Two processes put one name over and over (in both encodings) while a third starts
// registries over the directory again and again and the parent rescans: every put succeeds
// (no starting registry deletes an upload in progress), every version anyone ever sees is
// one of the complete documents, and afterwards every registry agrees on one of them.
TEST(AdapterReplicas, ConcurrentPutsFromSeveralProcessesNeverTearAndEndInOneVersion) {
  TempDir dir;
  auto padded = [](std::string doc, size_t bytes) {
    doc.append(bytes > doc.size() ? bytes - doc.size() : 0, ' ');
    return doc;
  };
  struct Doc {
    std::string bytes;
    AdapterEncoding encoding;
  };
  std::vector<std::vector<Doc>> writers = {
      {{padded(mixed_doc(1), 300'000), AdapterEncoding::kJson}, {padded(mixed_doc(2), 200'000), AdapterEncoding::kJson}},
      {{nsa_safetensors_doc(3), AdapterEncoding::kSafetensors}, {padded(nsa_json_doc(4), 250'000), AdapterEncoding::kJson},
       {nsa_safetensors_doc(5), AdapterEncoding::kSafetensors}},
  };
  std::set<std::string> valid;
  for (const auto& w : writers)
    for (const Doc& d : w) valid.insert(sha256_hex(d.bytes));
  constexpr int kPutsPerWriter = 40;

  std::vector<pid_t> children;
  for (size_t w = 0; w < writers.size(); ++w) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      spdlog::set_level(spdlog::level::warn);
      AdapterRegistry r(test_shape(), "", dir.path(), kBudget);
      r.load_directory();
      int failures = 0;
      for (int i = 0; i < kPutsPerWriter; ++i) {
        const Doc& d = writers[w][static_cast<size_t>(i) % writers[w].size()];
        if (!r.put("x", d.bytes, d.encoding).is_ok()) ++failures;
      }
      ::_exit(failures);
    }
    ASSERT_GT(pid, 0);
    children.push_back(pid);
  }
  // Replicas starting while the uploads run, each checking what it loads.
  const pid_t starter = ::fork();
  if (starter == 0) {
    spdlog::set_level(spdlog::level::warn);
    int bad = 0;
    for (int i = 0; i < 40; ++i) {
      AdapterRegistry r(test_shape(), "", dir.path(), kBudget);
      r.load_directory();
      const std::string sha = sha_of(r, "x");
      if (!sha.empty() && !valid.count(sha)) ++bad;
    }
    ::_exit(bad);
  }
  ASSERT_GT(starter, 0);
  children.push_back(starter);

  // The parent: a replica that rescans throughout and pins what it finds.
  AdapterRegistry observer(test_shape(), "", dir.path(), kBudget);
  observer.load_directory();
  std::set<std::string> seen;
  int exited = 0;
  std::vector<int> statuses(children.size(), -1);
  while (exited < static_cast<int>(children.size())) {
    observer.rescan();
    if (const std::string sha = sha_of(observer, "x"); !sha.empty()) {
      seen.insert(sha);
      Result<std::shared_ptr<const Adapter>> p = observer.pin("x");
      if (p.is_ok()) seen.insert((*p)->sha256());
    }
    for (size_t i = 0; i < children.size(); ++i) {
      if (statuses[i] != -1) continue;
      int status = 0;
      if (::waitpid(children[i], &status, WNOHANG) == children[i]) {
        statuses[i] = status;
        ++exited;
      }
    }
  }
  for (size_t i = 0; i < children.size(); ++i) {
    ASSERT_TRUE(WIFEXITED(statuses[i])) << "child " << i << " wait status " << statuses[i];
    EXPECT_EQ(WEXITSTATUS(statuses[i]), 0) << (i < writers.size() ? "puts that failed in writer " : "versions outside the uploaded set seen by the starter ")
                                           << i;
  }
  for (const std::string& sha : seen) EXPECT_TRUE(valid.count(sha)) << "a version nobody uploaded: " << sha;
  EXPECT_GE(seen.size(), 2u) << "the observer saw the versions change";

  // Afterwards: one version, the same for everyone, and it is what the file holds.
  observer.rescan();
  auto late1 = replica(dir.path());
  auto late2 = replica(dir.path());
  const std::string final_sha = sha_of(*late1, "x");
  EXPECT_TRUE(valid.count(final_sha)) << final_sha;
  EXPECT_EQ(sha_of(*late2, "x"), final_sha);
  EXPECT_EQ(sha_of(observer, "x"), final_sha);
  EXPECT_EQ(described(*late1), described(observer));
  AdapterStore store(dir.path());
  Result<AdapterFileContents> current = store.read_current("x");
  ASSERT_TRUE(current.is_ok());
  EXPECT_EQ(sha256_hex(current->bytes), final_sha);
  int files = 0;
  for (const char* f : {"x.json", "x.safetensors"}) files += std::filesystem::exists(dir.file(f)) ? 1 : 0;
  EXPECT_EQ(files, 1) << "the superseded encoding was removed";
  EXPECT_TRUE(temp_files_in(dir.path()).empty()) << "every writer exited normally: no temporary file is left";
}

}  // namespace
}  // namespace hotswap
