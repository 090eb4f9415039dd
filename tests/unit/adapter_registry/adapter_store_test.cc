#include "adapters/adapter_store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "core/load_error.h"
#include "test_adapters.h"

namespace hotswap {
namespace {

using testing::directory_contents;
using testing::read_file;
using testing::TempDir;
using testing::temp_files_in;
using testing::write_file;

TEST(AdapterName, AcceptsThePattern) {
  for (const std::string& name :
       std::vector<std::string>{"a", "Z", "0", "llama-3.2_mixed.v1", std::string(64, 'x'), "a..b", "9-", "a.json"}) {
    EXPECT_TRUE(validate_adapter_name(name).is_ok()) << name << ": " << validate_adapter_name(name).message();
  }
}

TEST(AdapterName, RefusesWithAMessageSayingWhatIsWrong) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "adapter name is empty"},
      {".", "is a path component"},
      {"..", "is a path component"},
      {"../etc", "path separator '/' at position 2"},
      {"/abs", "path separator '/' at position 0"},
      {"a\\b", "path separator '\\' at position 1"},
      {std::string("a\0b", 3), "control character 0x00 at position 1"},
      {"tab\there", "control character 0x09 at position 3"},
      {"del\x7f", "control character 0x7f at position 3"},
      {std::string(65, 'a'), "is 65 characters long; at most 64 are allowed"},
      {"-lead", "must start with a letter or digit, got '-'"},
      {".hidden", "must start with a letter or digit, got '.'"},
      {"_x", "must start with a letter or digit"},
      {"a:b", "contains ':' at position 1"},
      {"caf\xc3\xa9", "contains '\\xc3' at position 3"},
      {"a'b", "contains '\\x27' at position 1"},
  };
  for (const auto& [name, part] : cases) {
    const Status s = validate_adapter_name(name);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << part;
    EXPECT_NE(s.message().find(part), std::string::npos) << "'" << part << "' not in: " << s.message();
    // Hostile bytes never reach a message (or a log line) raw.
    for (char c : s.message()) EXPECT_FALSE(static_cast<unsigned char>(c) < 0x20) << s.message();
  }
}

TEST(AdapterStore, WriteReplacesAtomicallyAndKeepsTheUploadTime) {
  TempDir dir;
  AdapterStore store(dir.path());
  const int64_t t1 = 1'700'000'000'123'456'789;
  ASSERT_TRUE(store.write("a", AdapterEncoding::kJson, "first", t1).is_ok());
  EXPECT_EQ(read_file(dir.file("a.json")), "first");
  ASSERT_TRUE(store.write("a", AdapterEncoding::kJson, "second", t1 + 5).is_ok());
  EXPECT_EQ(read_file(dir.file("a.json")), "second");
  EXPECT_TRUE(temp_files_in(dir.path()).empty());

  // Switching encoding removes the other file.
  ASSERT_TRUE(store.write("a", AdapterEncoding::kSafetensors, "binary", t1 + 10).is_ok());
  EXPECT_FALSE(std::filesystem::exists(dir.file("a.json")));
  EXPECT_EQ(read_file(dir.file("a.safetensors")), "binary");

  const AdapterDirectoryScan scan = store.scan();
  ASSERT_EQ(scan.adapters.size(), 1u);
  EXPECT_EQ(scan.adapters[0].name, "a");
  EXPECT_EQ(scan.adapters[0].encoding, AdapterEncoding::kSafetensors);
  EXPECT_EQ(scan.adapters[0].mtime_ns, t1 + 10);

  Result<std::string> back = store.read("a", AdapterEncoding::kSafetensors);
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(back.value(), "binary");
  EXPECT_EQ(store.read("a", AdapterEncoding::kJson).status().code(), StatusCode::kNotFound);

  ASSERT_TRUE(store.remove("a").is_ok());
  ASSERT_TRUE(store.remove("a").is_ok());  // absent is fine
  EXPECT_TRUE(directory_contents(dir.path()).empty());
}

TEST(AdapterStore, AFailedWriteLeavesThePreviousFileAndNoTemporary) {
  TempDir dir;
  AdapterStore store(dir.path());
  ASSERT_TRUE(store.write("a", AdapterEncoding::kJson, "old", 1'000'000'000).is_ok());
  // The rename target is a non-empty directory: rename(2) fails after the data was written.
  std::filesystem::create_directory(dir.file("b.json"));
  write_file(dir.file("b.json/inside"), "x");
  const Status s = store.write("b", AdapterEncoding::kJson, "new", 1'000'000'000).status();
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_NE(s.message().find(dir.file("b.json")), std::string::npos) << s.message();
  EXPECT_TRUE(temp_files_in(dir.path()).empty());
  EXPECT_EQ(read_file(dir.file("a.json")), "old");
}

TEST(AdapterStore, ScanKeepsTheNewerOfTwoEncodingsAndRemovesTemporaries) {
  TempDir dir;
  AdapterStore store(dir.path());
  // What a replacement that changed encoding leaves if it dies between rename and unlink.
  ASSERT_TRUE(store.write("x", AdapterEncoding::kJson, "old json", 2'000'000'000'000'000'000).is_ok());
  write_file(dir.file("x.safetensors"), "new safetensors");
  const struct timespec newer[2] = {{2'000'000'001, 0}, {2'000'000'001, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, dir.file("x.safetensors").c_str(), newer, 0), 0);
  // What a killed upload leaves: a temporary file whose writer no longer exists.
  write_file(dir.file(".x." + testing::dead_process_owner() + "-00000000000000ff.tmp"), "partial");
  write_file(dir.file("readme.md"), "not an adapter");

  const AdapterDirectoryScan scan = store.scan();
  ASSERT_EQ(scan.adapters.size(), 1u);
  EXPECT_EQ(scan.adapters[0].encoding, AdapterEncoding::kSafetensors);
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.json")));
  EXPECT_EQ(scan.removed_temp_files.size(), 1u);
  EXPECT_TRUE(temp_files_in(dir.path()).empty());
  ASSERT_EQ(scan.skipped.size(), 2u);  // the older x.json and readme.md
  EXPECT_TRUE(std::filesystem::exists(dir.file("readme.md")));
}

TEST(AdapterStore, ScanCreatesAMissingDirectoryAndFailsLoudlyOnAnUnusableOne) {
  TempDir dir;
  AdapterStore nested(dir.file("a/b/c"));
  EXPECT_TRUE(nested.scan().adapters.empty());
  EXPECT_TRUE(std::filesystem::is_directory(dir.file("a/b/c")));

  write_file(dir.file("plain"), "a file, not a directory");
  AdapterStore bad(dir.file("plain"));
  EXPECT_THROW(bad.scan(), LoadError);
}

}  // namespace
}  // namespace hotswap
