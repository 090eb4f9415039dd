// Streaming detokenization: what push() returns is final, and the pieces add up to decode().
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "real_tokenizers.h"

namespace hotswap {
namespace {

using Ids = std::vector<int32_t>;

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const size_t n = b < 0x80 ? 1 : b < 0xC2 ? 0 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : b < 0xF5 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

std::vector<std::string> stream(const Tokenizer& tok, const Ids& ids, bool skip_special) {
  IncrementalDecoder decoder(tok, skip_special);
  std::vector<std::string> pieces;
  for (int32_t id : ids) pieces.push_back(decoder.push(id));
  pieces.push_back(decoder.flush());
  return pieces;
}

std::string join(const std::vector<std::string>& pieces) {
  std::string out;
  for (const auto& p : pieces) out += p;
  return out;
}

TEST(IncrementalDecoder, CharacterSplitOverByteLevelTokensAppearsWhenComplete) {
  const Tokenizer* tok = test_support::real_tokenizer("llama3");
  ASSERT_NE(tok, nullptr);
  // 👨‍👩‍👧 is 18 bytes; llama3 spells it with tokens that end inside characters.
  const Ids ids = tok->encode("hi 👨‍👩‍👧!", false);
  ASSERT_GT(ids.size(), 4u);
  const auto pieces = stream(*tok, ids, true);
  size_t empty_pushes = 0;
  for (size_t i = 0; i + 1 < pieces.size(); ++i) {
    EXPECT_TRUE(valid_utf8(pieces[i])) << "piece " << i;
    EXPECT_EQ(pieces[i].find("\xEF\xBF\xBD"), std::string::npos) << "piece " << i;
    empty_pushes += pieces[i].empty();
  }
  EXPECT_GT(empty_pushes, 0u) << "some token should end inside a character";
  EXPECT_EQ(join(pieces), "hi 👨‍👩‍👧!");
}

TEST(IncrementalDecoder, ByteFallbackRunIsHeldUntilItEnds) {
  const Tokenizer* tok = test_support::real_tokenizer("llama2");
  ASSERT_NE(tok, nullptr);
  // 🧑 has no llama2 token: it becomes <0xF0><0x9F><0xA7><0x91>.
  const Ids ids = tok->encode("a🧑b", false);
  const auto pieces = stream(*tok, ids, true);
  ASSERT_EQ(pieces.size(), ids.size() + 1);
  std::string so_far;
  for (size_t i = 0; i < ids.size(); ++i) {
    const bool byte_token = tok->id_to_token(ids[i]).rfind("<0x", 0) == 0;
    if (byte_token) {
      EXPECT_EQ(pieces[i], "") << "a byte run is not final before it ends";
    }
    so_far += pieces[i];
  }
  EXPECT_EQ(so_far + pieces.back(), "a🧑b");
  EXPECT_EQ(join(pieces), tok->decode(ids, true));
}

TEST(IncrementalDecoder, SentencePieceLeadingSpaceIsStrippedOnlyAtTheStart) {
  const Tokenizer* tok = test_support::real_tokenizer("llama2");
  ASSERT_NE(tok, nullptr);
  const Ids ids = tok->encode("Hello world", true);  // <s> ▁Hello ▁world
  const auto pieces = stream(*tok, ids, true);
  EXPECT_EQ(pieces[0], "");
  EXPECT_EQ(pieces[1], "Hello");
  EXPECT_EQ(pieces[2], " world");
  EXPECT_EQ(join(pieces), "Hello world");
  EXPECT_EQ(join(stream(*tok, ids, false)), "<s> Hello world");
}

TEST(IncrementalDecoder, SkippedSpecialTokensProduceNothing) {
  const Tokenizer* tok = test_support::real_tokenizer("qwen3");
  ASSERT_NE(tok, nullptr);
  const Ids ids = tok->encode("<|im_start|>user\nhi<|im_end|>", false);
  const auto skipped = stream(*tok, ids, true);
  EXPECT_EQ(skipped.front(), "");
  EXPECT_EQ(join(skipped), "user\nhi");
  EXPECT_EQ(join(stream(*tok, ids, false)), "<|im_start|>user\nhi<|im_end|>");
}

TEST(IncrementalDecoder, FlushReplacesAnUnfinishedCharacter) {
  const Tokenizer* tok = test_support::real_tokenizer("llama3");
  ASSERT_NE(tok, nullptr);
  // The byte-level tokens for the first two bytes of "😀" (F0 9F 98 80).
  const auto f0 = tok->token_to_id("ð");
  const auto x9f = tok->token_to_id("Ł");
  ASSERT_TRUE(f0 && x9f);
  IncrementalDecoder decoder(*tok);
  EXPECT_EQ(decoder.push(*f0), "");
  EXPECT_EQ(decoder.push(*x9f), "");
  EXPECT_EQ(decoder.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(tok->decode(Ids{*f0, *x9f}, true), "\xEF\xBF\xBD");
}

// Random id sequences (real tokens, byte pieces, specials): the stream always adds up to
// decode() when that decode holds no U+FFFD, and every piece is valid UTF-8.
class IncrementalDecoderProperty : public ::testing::TestWithParam<std::string> {};

TEST_P(IncrementalDecoderProperty, PiecesAddUpToDecode) {
  const Tokenizer* tok = test_support::real_tokenizer(GetParam());
  ASSERT_NE(tok, nullptr);
  std::mt19937 rng(1234);
  const std::string sample = "Grüße 世界 👍🏽 naïve café 1,234 <s> </s> ok";
  const Ids sample_ids = tok->encode(sample, true);
  size_t checked = 0;
  for (int round = 0; round < 300; ++round) {
    Ids ids;
    const int n = 1 + static_cast<int>(rng() % 24);
    for (int i = 0; i < n; ++i) {
      switch (rng() % 3) {
        case 0: ids.push_back(static_cast<int32_t>(rng() % static_cast<uint32_t>(tok->vocab_size()))); break;
        case 1: ids.push_back(static_cast<int32_t>(rng() % 300)); break;  // byte pieces, specials
        default: ids.push_back(sample_ids[rng() % sample_ids.size()]); break;
      }
    }
    for (const bool skip : {true, false}) {
      const auto pieces = stream(*tok, ids, skip);
      for (const auto& p : pieces) EXPECT_TRUE(valid_utf8(p));
      const std::string full = tok->decode(ids, skip);
      if (full.find("\xEF\xBF\xBD") != std::string::npos) continue;
      EXPECT_EQ(join(pieces), full) << "round " << round << " skip=" << skip;
      ++checked;
    }
  }
  EXPECT_GT(checked, 100u);
}

INSTANTIATE_TEST_SUITE_P(RealTokenizers, IncrementalDecoderProperty, ::testing::Values("llama2", "llama3", "qwen3"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace hotswap
