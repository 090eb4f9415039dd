// The real tokenizer files the tests compare against (.cache/tokenizers/<name>, fetched by
// scripts/fetch-tokenizers.sh), loaded once per test process.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "tokenizer/tokenizer.h"

namespace hotswap::test_support {

inline std::string real_tokenizer_dir(const std::string& name) {
  return std::string(HOTSWAP_SOURCE_DIR) + "/.cache/tokenizers/" + name;
}

// nullptr (and a test failure, never a skip) when the file is missing.
inline const Tokenizer* real_tokenizer(const std::string& name) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<Tokenizer>> loaded;
  std::lock_guard lock(mutex);
  auto& slot = loaded[name];
  if (!slot) {
    const std::string dir = real_tokenizer_dir(name);
    if (!std::filesystem::exists(dir + "/tokenizer.json")) {
      ADD_FAILURE() << dir << "/tokenizer.json is missing: run scripts/fetch-tokenizers.sh";
      return nullptr;
    }
    slot = Tokenizer::load(dir);
  }
  return slot.get();
}

}  // namespace hotswap::test_support
