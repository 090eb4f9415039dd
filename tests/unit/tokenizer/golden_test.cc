// Every case of tests/golden/tokenizers/<name>.json (made by the `tokenizers` library with
// scripts/reference/make_fixtures.py) against the real tokenizer files in .cache/tokenizers.
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "real_tokenizers.h"

namespace hotswap {
namespace {

const std::string kSourceDir = HOTSWAP_SOURCE_DIR;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string printable(const std::string& text) {
  std::string out = text.substr(0, 60);
  for (char& c : out) {
    if (c == '\n') c = '|';
  }
  return out;
}

class GoldenTokenizer : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    tokenizer_ = test_support::real_tokenizer(GetParam());
    ASSERT_NE(tokenizer_, nullptr);
    const std::string fixture = kSourceDir + "/tests/golden/tokenizers/" + GetParam() + ".json";
    ASSERT_TRUE(std::filesystem::exists(fixture)) << fixture << " is missing";
    cases_ = nlohmann::json::parse(slurp(fixture)).at("cases");
    ASSERT_FALSE(cases_.empty());
  }

  const Tokenizer* tokenizer_ = nullptr;
  nlohmann::json cases_;
};

TEST_P(GoldenTokenizer, EncodeWithoutSpecialTokensMatchesTokenizers) {
  for (const auto& c : cases_) {
    const std::string text = c.at("text");
    EXPECT_EQ(tokenizer_->encode(text, false), c.at("ids").get<std::vector<int32_t>>()) << "text: " << printable(text);
  }
}

TEST_P(GoldenTokenizer, EncodeWithSpecialTokensMatchesTokenizers) {
  for (const auto& c : cases_) {
    const std::string text = c.at("text");
    EXPECT_EQ(tokenizer_->encode(text, true), c.at("ids_with_special").get<std::vector<int32_t>>())
        << "text: " << printable(text);
  }
}

TEST_P(GoldenTokenizer, DecodeMatchesTokenizers) {
  for (const auto& c : cases_) {
    const auto ids = c.at("ids").get<std::vector<int32_t>>();
    EXPECT_EQ(tokenizer_->decode(ids, false), c.at("decoded").get<std::string>())
        << "text: " << printable(c.at("text"));
  }
}

TEST_P(GoldenTokenizer, DecodeSkippingSpecialTokensMatchesTokenizers) {
  for (const auto& c : cases_) {
    const auto ids = c.at("ids_with_special").get<std::vector<int32_t>>();
    EXPECT_EQ(tokenizer_->decode(ids, true), c.at("decoded_skip_special").get<std::string>())
        << "text: " << printable(c.at("text"));
  }
}

TEST_P(GoldenTokenizer, IncrementalDecodingConcatenatesToDecode) {
  for (const auto& c : cases_) {
    for (const bool skip : {false, true}) {
      const auto ids = c.at(skip ? "ids_with_special" : "ids").get<std::vector<int32_t>>();
      IncrementalDecoder stream(*tokenizer_, skip);
      std::string streamed;
      for (int32_t id : ids) streamed += stream.push(id);
      streamed += stream.flush();
      EXPECT_EQ(streamed, c.at(skip ? "decoded_skip_special" : "decoded").get<std::string>())
          << "skip=" << skip << " text: " << printable(c.at("text"));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(RealTokenizers, GoldenTokenizer, ::testing::Values("llama2", "llama3", "qwen3"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace hotswap
