// The q8 / q4 weight cache (model/q8_cache.h, model/quantized_weights.h): the first q8 load
// quantises and writes the cache next to the model, the next one maps it and quantises nothing
// (QuantizedWeights::source() says which happened), and a cache that is corrupt, truncated,
// of another format version, hostile, made from other weights or of the other weight format
// is ignored, rewritten and never changes the logits. q8 and q4 caches live side by side.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>

#include "core/mapped_file.h"
#include "model/model.h"
#include "model/q8_cache.h"
#include "runner/sequence_session.h"

namespace hotswap {
namespace {

namespace fs = std::filesystem;
using Source = QuantizedWeights::Source;

const std::string kTiny = std::string(HOTSWAP_SOURCE_DIR) + "/tests/golden/models/qwen2_bf16";

class TempDir {
 public:
  explicit TempDir(const std::string& name)
      : dir_(fs::temp_directory_path() / ("hotswap_q8_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  ~TempDir() { fs::remove_all(dir_); }
  const fs::path& path() const { return dir_; }

 private:
  fs::path dir_;
};

// A copy of the tiny model in its own directory.
class ModelCopy : public TempDir {
 public:
  explicit ModelCopy(const std::string& name) : TempDir(name) {
    for (const char* f : {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"})
      fs::copy_file(fs::path(kTiny) / f, path() / f);
  }
  std::string cache(WeightFormat f = WeightFormat::kQ8) const {
    return (path() / ("hotswap-" + std::string(weight_format_name(f)) + ".cache")).string();
  }
};

std::unique_ptr<Model> load_q8(const fs::path& dir, const std::string& cache_dir = "",
                               WeightFormat format = WeightFormat::kQ8) {
  return Model::load(dir.string(), ModelLoadOptions{format, {.cache_dir = cache_dir}});
}

std::vector<float> logits(const Model& model) {
  const std::vector<int32_t> ids = {3, 141, 59, 26, 53, 58, 97, 93, 23, 84, 62, 64, 33, 83, 279, 50, 28};
  SequenceSession session(model, static_cast<int>(ids.size()));
  return session.append(ids, /*all_positions=*/true);
}

std::string read_bytes(const std::string& path) { return read_file(path); }
void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

TEST(Q8Cache, FirstLoadQuantisesAndWritesTheCacheTheSecondMapsIt) {
  ModelCopy d("first_second");
  auto first = load_q8(d.path());
  ASSERT_NE(first->quantized(), nullptr);
  EXPECT_EQ(first->quantized()->source(), Source::kQuantized);
  EXPECT_EQ(first->quantized()->cache_path(), d.cache());
  ASSERT_TRUE(fs::exists(d.cache()));
  const auto written = fs::last_write_time(d.cache());

  auto second = load_q8(d.path());
  EXPECT_EQ(second->quantized()->source(), Source::kCache) << "the second load quantised again";
  EXPECT_EQ(second->quantized()->cache_path(), d.cache());
  EXPECT_EQ(fs::last_write_time(d.cache()), written) << "a valid cache is not rewritten";
  EXPECT_EQ(logits(*first), logits(*second));
  for (const auto& entry : fs::directory_iterator(d.path()))
    EXPECT_EQ(entry.path().string().find(".tmp."), std::string::npos) << "left behind: " << entry.path();
}

TEST(Q8Cache, AutoWeightsNeitherQuantiseNorTouchTheCache) {
  ModelCopy d("auto");
  auto model = Model::load(d.path().string());
  EXPECT_EQ(model->quantized(), nullptr);
  EXPECT_FALSE(fs::exists(d.cache()));
}

// Each damage is applied to a valid cache; the load must ignore the file, quantise, give the
// same logits as a clean load and leave a valid cache behind.
void check_damaged_caches(WeightFormat format) {
  ModelCopy d(std::string("damaged_") + weight_format_name(format));
  const auto load = [&] { return load_q8(d.path(), "", format); };
  const std::vector<float> expected = logits(*load());
  const std::string good = read_bytes(d.cache(format));
  ASSERT_GT(good.size(), 4096u + 64);
  auto patched = [&](size_t at, const std::string& bytes) {
    std::string b = good;
    b.replace(at, bytes.size(), bytes);
    return b;
  };
  const std::string u32_max("\xff\xff\xff\xff", 4), u64_huge("\x00\x00\x00\x00\x00\x00\x00\x40", 8);
  const std::vector<std::pair<std::string, std::function<void()>>> damages = {
      {"a flipped payload byte", [&] { write_bytes(d.cache(format), patched(4096 + 1000, std::string(1, static_cast<char>(good[5096] ^ 1)))); }},
      {"a flipped scale byte at the end", [&] { write_bytes(d.cache(format), patched(good.size() - 20, std::string(1, static_cast<char>(good[good.size() - 20] ^ 0x40)))); }},
      {"truncated by 100 bytes", [&] { write_bytes(d.cache(format), good.substr(0, good.size() - 100)); }},
      {"truncated to its header", [&] { write_bytes(d.cache(format), good.substr(0, 4096)); }},
      {"one byte appended", [&] { write_bytes(d.cache(format), good + "x"); }},
      {"empty", [&] { write_bytes(d.cache(format), ""); }},
      {"not a cache", [&] { write_bytes(d.cache(format), "hello, world"); }},
      {"format version 2", [&] { write_bytes(d.cache(format), patched(8, std::string("\x02\x00\x00\x00", 4))); }},
      {"a key length of 4 GiB", [&] { write_bytes(d.cache(format), patched(12, u32_max)); }},
      {"a payload offset past the file", [&] { write_bytes(d.cache(format), patched(16, u64_huge)); }},
      {"a payload size past the file", [&] { write_bytes(d.cache(format), patched(24, u64_huge)); }},
      {"a different key", [&] { write_bytes(d.cache(format), patched(40, "#")); }},
      {"the other weight format's cache",
       [&] {
         const WeightFormat other = format == WeightFormat::kQ8 ? WeightFormat::kQ4 : WeightFormat::kQ8;
         load_q8(d.path(), "", other);
         fs::copy_file(d.cache(other), d.cache(format), fs::copy_options::overwrite_existing);
       }},
      {"made from other weights (the checkpoint was modified)",
       [&] {
         const fs::path st = d.path() / "model.safetensors";
         fs::last_write_time(st, fs::last_write_time(st) + std::chrono::seconds(5));
       }},
  };
  for (const auto& [what, damage] : damages) {
    damage();
    auto model = load();
    EXPECT_EQ(model->quantized()->source(), Source::kQuantized) << what << ": the damaged cache was used";
    EXPECT_EQ(logits(*model), expected) << what;
    EXPECT_EQ(load()->quantized()->source(), Source::kCache) << what << ": not rewritten";
  }
}

TEST(Q8Cache, DamagedOrForeignCachesAreIgnoredAndRewritten) { check_damaged_caches(WeightFormat::kQ8); }
TEST(Q4Cache, DamagedOrForeignCachesAreIgnoredAndRewritten) { check_damaged_caches(WeightFormat::kQ4); }

// One model, both formats: each has its own file (its key names the format), both are mapped
// on the next load, and the q4 logits are q4's, not q8's.
TEST(Q4Cache, Q8AndQ4CachesLiveSideBySide) {
  ModelCopy d("side_by_side");
  const std::vector<float> q8 = logits(*load_q8(d.path())), q4 = logits(*load_q8(d.path(), "", WeightFormat::kQ4));
  EXPECT_NE(q8, q4);
  ASSERT_TRUE(fs::exists(d.cache(WeightFormat::kQ8)));
  ASSERT_TRUE(fs::exists(d.cache(WeightFormat::kQ4)));
  EXPECT_LT(fs::file_size(d.cache(WeightFormat::kQ4)), fs::file_size(d.cache(WeightFormat::kQ8)));
  auto again4 = load_q8(d.path(), "", WeightFormat::kQ4);
  EXPECT_EQ(again4->quantized()->source(), Source::kCache);
  EXPECT_EQ(again4->quantized()->format(), kernels::QuantFormat::kQ4);
  EXPECT_EQ(logits(*again4), q4);
  auto again8 = load_q8(d.path());
  EXPECT_EQ(again8->quantized()->source(), Source::kCache);
  EXPECT_EQ(logits(*again8), q8);
  // The fallback directory's names carry the format too.
  const WeightCacheOptions elsewhere{.next_to_model = false, .cache_dir = "/c"};
  EXPECT_NE(q8_cache_paths(d.path().string(), elsewhere, kernels::QuantFormat::kQ8),
            q8_cache_paths(d.path().string(), elsewhere, kernels::QuantFormat::kQ4));
}



TEST(Q8Cache, UnwritableModelDirectoryFallsBackToTheCacheDirectory) {
  ModelCopy d("fallback");
  TempDir cache("fallback_cache");
  // A directory where the cache file would go: nothing can be renamed onto it (even as root,
  // for whom permission bits would not stop the write).
  fs::create_directories(d.cache());
  auto first = load_q8(d.path(), cache.path().string());
  EXPECT_EQ(first->quantized()->source(), Source::kQuantized);
  const std::string path = first->quantized()->cache_path();
  EXPECT_EQ(path.rfind((cache.path() / "weights").string(), 0), 0u) << path;
  ASSERT_TRUE(fs::is_regular_file(path));
  auto second = load_q8(d.path(), cache.path().string());
  EXPECT_EQ(second->quantized()->source(), Source::kCache);
  EXPECT_EQ(second->quantized()->cache_path(), path);
  EXPECT_EQ(logits(*first), logits(*second));
  // Without any writable place the model still loads (and quantises each time).
  auto nowhere = load_q8(d.path());
  EXPECT_EQ(nowhere->quantized()->source(), Source::kQuantized);
  EXPECT_EQ(nowhere->quantized()->cache_path(), "");
}

// The fuzz target's seed (tests/fuzz/q8_cache_fuzz.cc) must stay a valid cache, so that its
// mutations reach the checks behind the header's.
TEST(Q8Cache, TheFuzzSeedIsAValidCache) {
  std::string why;
  const Q8CacheFile f = open_q8_cache(std::string(HOTSWAP_SOURCE_DIR) + "/tests/fuzz/corpus/q8_cache/valid.cache",
                                      "hotswap q8 fuzz key\n", 256, &why);
  ASSERT_NE(f.file, nullptr) << why;
  EXPECT_EQ(f.payload[1], 48);  // (i * 37 + 11) & 0xff
}

TEST(Q8Cache, Q8LogitsStayCloseToTheStoredWeights) {
  ModelCopy d("close");
  const std::vector<float> q8 = logits(*load_q8(d.path())), stored = logits(*Model::load(d.path().string()));
  ASSERT_EQ(q8.size(), stored.size());
  float diff = 0, scale = 0;
  for (size_t i = 0; i < q8.size(); ++i) {
    diff = std::max(diff, std::fabs(q8[i] - stored[i]));
    scale = std::max(scale, std::fabs(stored[i]));
  }
  EXPECT_GT(diff, 0.0f) << "the q8 weights were not used";
  EXPECT_LT(diff / scale, 0.15f);  // measured 0.06; tests/golden/q8_weights_test.cc has the full table
}

}  // namespace
}  // namespace hotswap
