// The encode/decode pipeline on small hand-written tokenizer.json files. Expected ids are
// what the `tokenizers` library (0.23.2) returns for the same files and inputs.
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "real_tokenizers.h"

namespace hotswap {
namespace {

using Ids = std::vector<int32_t>;

// a..z = 0..25, " " = 26, "ab" = 27, "abc" = 28, "<unk>" = 29, added tokens 30..33.
std::string letters_tokenizer(bool fuse_unk, const std::string& merges = R"([["a", "b"], ["ab", "c"]])") {
  std::string vocab;
  for (char c = 'a'; c <= 'z'; ++c) {
    vocab.append(1, '"').append(1, c).append("\": ").append(std::to_string(c - 'a')).append(", ");
  }
  vocab += R"(" ": 26, "ab": 27, "abc": 28, "<unk>": 29)";
  return R"({
    "version": "1.0", "truncation": null, "padding": null,
    "added_tokens": [
      {"id": 30, "content": "<mask>", "single_word": false, "lstrip": true, "rstrip": true, "normalized": false, "special": true},
      {"id": 31, "content": "<sep>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
      {"id": 32, "content": "cat", "single_word": true, "lstrip": false, "rstrip": false, "normalized": false, "special": false},
      {"id": 33, "content": "DOG", "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "special": false}],
    "normalizer": {"type": "Lowercase"},
    "pre_tokenizer": null,
    "post_processor": {"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<sep>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "<sep>", "type_id": 0}}],
      "pair": [], "special_tokens": {"<sep>": {"id": "<sep>", "ids": [31], "tokens": ["<sep>"]}}},
    "decoder": null,
    "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
              "end_of_word_suffix": null, "fuse_unk": )" +
         std::string(fuse_unk ? "true" : "false") + R"(, "byte_fallback": false,
              "vocab": {)" + vocab + R"(}, "merges": )" + merges + "}}";
}

TEST(Tokenizer, MergesApplyByRank) {
  const auto tok = Tokenizer::from_json(letters_tokenizer(false), "");
  EXPECT_EQ(tok->encode("abc", false), (Ids{28}));
  EXPECT_EQ(tok->encode("abd", false), (Ids{27, 3}));
  EXPECT_EQ(tok->encode("bc", false), (Ids{1, 2}));
}

TEST(Tokenizer, StringAndPairMergesAreEquivalent) {
  const auto pairs = Tokenizer::from_json(letters_tokenizer(false), "");
  const auto strings = Tokenizer::from_json(letters_tokenizer(false, R"(["a b", "ab c"])"), "");
  for (const char* text : {"abc", "cab abcab", "aabbcc"}) EXPECT_EQ(pairs->encode(text, false), strings->encode(text, false));
}

TEST(Tokenizer, LstripRstripTokenAbsorbsSurroundingSpaces) {
  const auto tok = Tokenizer::from_json(letters_tokenizer(false), "");
  EXPECT_EQ(tok->encode("ab <mask> c", false), (Ids{27, 30, 2}));
  EXPECT_EQ(tok->encode("ab  <mask>  <mask> c", false), (Ids{27, 30, 30, 2}));
  // <sep> strips nothing.
  EXPECT_EQ(tok->encode("ab<sep> c", false), (Ids{27, 31, 26, 2}));
}

TEST(Tokenizer, SingleWordTokenOnlyMatchesWholeWords) {
  const auto tok = Tokenizer::from_json(letters_tokenizer(false), "");
  EXPECT_EQ(tok->encode("cat scat cat.", false), (Ids{32, 26, 18, 2, 0, 19, 26, 32, 29}));
}

TEST(Tokenizer, NormalizedAddedTokenMatchesNormalizedText) {
  const auto tok = Tokenizer::from_json(letters_tokenizer(false), "");
  // "DOG" is normalized=true: it matches the lowercased text, and decodes to its normalized form.
  EXPECT_EQ(tok->encode("a DOG dog", false), (Ids{0, 26, 33, 26, 33}));
  EXPECT_EQ(tok->decode(Ids{0, 26, 33}, false), "a   dog");
  // "cat" is normalized=false: "Cat" is not it.
  EXPECT_EQ(tok->encode("Cat cat", false), (Ids{2, 0, 19, 26, 32}));
}

TEST(Tokenizer, SpecialTokensInTextAreRecognisedWithoutAddingSpecialTokens) {
  const auto tok = Tokenizer::from_json(letters_tokenizer(false), "");
  EXPECT_EQ(tok->encode("ab<sep>c", false), (Ids{27, 31, 2}));
  EXPECT_EQ(tok->encode("ab<sep>c", true), (Ids{31, 27, 31, 2, 31}));
}

TEST(Tokenizer, UnknownCharactersFuseOnlyWhenAsked) {
  EXPECT_EQ(Tokenizer::from_json(letters_tokenizer(false), "")->encode("x??y", false), (Ids{23, 29, 29, 24}));
  EXPECT_EQ(Tokenizer::from_json(letters_tokenizer(true), "")->encode("x??y", false), (Ids{23, 29, 24}));
}

TEST(Tokenizer, DecodeWithoutDecoderJoinsTokensAndSkipsSpecials) {
  const auto tok = Tokenizer::from_json(letters_tokenizer(false), "");
  EXPECT_EQ(tok->decode(Ids{27, 30, 2}, false), "ab <mask> c");
  EXPECT_EQ(tok->decode(Ids{31, 27, 30, 2, 31}, true), "ab c");
  EXPECT_EQ(tok->decode(Ids{27, 9999, -1, 2}, false), "ab c");  // unknown ids are dropped
}

TEST(Tokenizer, LookupsCoverVocabularyAndAddedTokens) {
  const auto tok = Tokenizer::from_json(letters_tokenizer(false), "");
  EXPECT_EQ(tok->vocab_size(), 34);
  EXPECT_EQ(tok->token_to_id("abc"), 28);
  EXPECT_EQ(tok->token_to_id("<mask>"), 30);
  EXPECT_EQ(tok->token_to_id("DOG"), 33);
  EXPECT_EQ(tok->token_to_id("nope"), std::nullopt);
  EXPECT_EQ(tok->id_to_token(27), "ab");
  EXPECT_EQ(tok->id_to_token(30), "<mask>");
  EXPECT_EQ(tok->id_to_token(34), "");
  EXPECT_TRUE(tok->is_special(30));
  EXPECT_FALSE(tok->is_special(32));
  EXPECT_FALSE(tok->is_special(5));
}

// SentencePiece-style BPE with byte fallback: "é" is in the vocabulary, "ß" only as bytes.
std::string byte_fallback_tokenizer() {
  std::string bytes;
  for (int b = 0; b < 256; ++b) {
    char name[16];
    std::snprintf(name, sizeof(name), "\"<0x%02X>\": %d, ", b, 3 + b);
    bytes += name;
  }
  return R"({"version": "1.0", "truncation": null, "padding": null,
    "added_tokens": [
      {"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
      {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                   {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
    "pre_tokenizer": null,
    "post_processor": {"type": "TemplateProcessing", "pair": [],
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
      "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
    "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
              "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true,
              "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, )" +
         bytes + R"("\u2581": 259, "a": 260, "é": 261, "\u2581a": 262},
              "merges": ["\u2581 a"]}})";
}

TEST(Tokenizer, ByteFallbackSpellsUnknownCharactersAsBytes) {
  const auto tok = Tokenizer::from_json(byte_fallback_tokenizer(), "");
  // ß is C3 9F: <0xC3> = 3 + 0xC3, <0x9F> = 3 + 0x9F.
  EXPECT_EQ(tok->encode("a ßé", false), (Ids{262, 259, 3 + 0xC3, 3 + 0x9F, 261}));
  EXPECT_EQ(tok->encode("a", true), (Ids{1, 262}));
  EXPECT_EQ(tok->decode(Ids{1, 262, 259, 3 + 0xC3, 3 + 0x9F, 261}, true), "a ßé");
  // An invalid byte run becomes one U+FFFD per byte.
  EXPECT_EQ(tok->decode(Ids{262, 3 + 0xC3, 3 + 0x41}, false), "a\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(Tokenizer, InvalidUtf8InputIsEncodedAsReplacementCharacters) {
  const Tokenizer* tok = test_support::real_tokenizer("llama3");
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->encode("ab\xC3(\xF0\x9F", false), tok->encode("ab\xEF\xBF\xBD(\xEF\xBF\xBD", false));
}

TEST(Tokenizer, TinyByteLevelTokenizerMatchesTokenizers) {
  const auto tok = Tokenizer::load(std::string(HOTSWAP_SOURCE_DIR) + "/tests/golden/models/llama_f32/tokenizer.json");
  const std::string text = "the quick brown fox, hello world!";
  // Reference ids from the tokenizers library for this file.
  const Ids expected = {86, 261, 317, 284, 309, 294, 80, 311, 90, 14, 306, 288, 81, 223, 305, 287, 3};
  const Ids ids = tok->encode(text, false);
  EXPECT_EQ(tok->decode(ids, false), text);
  EXPECT_EQ(tok->encode(text, true).front(), 1);
  EXPECT_EQ(tok->encode(text, true).size(), ids.size() + 1);
  EXPECT_EQ(ids, expected);
}

TEST(Tokenizer, ConcurrentEncodesAgreeWithSequentialOnes) {
  const Tokenizer* tok = test_support::real_tokenizer("qwen3");
  ASSERT_NE(tok, nullptr);
  std::vector<std::string> texts;
  for (int i = 0; i < 64; ++i) texts.push_back("request " + std::to_string(i * 7919) + ": Grüße, 世界 and emoji 😀 #" + std::to_string(i));
  std::vector<Ids> expected;
  for (const auto& t : texts) expected.push_back(tok->encode(t, true));
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      for (int round = 0; round < 20; ++round) {
        for (size_t i = 0; i < texts.size(); ++i) mismatches[w] += tok->encode(texts[i], true) != expected[i];
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

TEST(TokenizerConfig, ReadsSpecialTokensTemplateAndFlags) {
  const auto tok = Tokenizer::from_json(letters_tokenizer(false), R"({
      "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false},
      "eos_token": "</s>", "pad_token": null,
      "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}],
      "add_bos_token": true})");
  EXPECT_EQ(tok->config().bos_token, "<s>");
  EXPECT_EQ(tok->config().eos_token, "</s>");
  EXPECT_EQ(tok->config().pad_token, "");
  EXPECT_EQ(tok->config().unk_token, "");
  EXPECT_EQ(tok->config().chat_template, "D");
  EXPECT_EQ(tok->config().add_bos_token, true);
  EXPECT_EQ(tok->config().add_eos_token, std::nullopt);
}

TEST(TokenizerConfig, RealFilesExposeTheirTemplates) {
  const Tokenizer* qwen3 = test_support::real_tokenizer("qwen3");
  const Tokenizer* llama2 = test_support::real_tokenizer("llama2");
  ASSERT_NE(qwen3, nullptr);
  ASSERT_NE(llama2, nullptr);
  EXPECT_EQ(qwen3->config().eos_token, "<|im_end|>");
  EXPECT_EQ(qwen3->config().pad_token, "<|endoftext|>");
  EXPECT_NE(qwen3->config().chat_template.find("<|im_start|>"), std::string::npos);
  EXPECT_EQ(qwen3->config().add_bos_token, false);
  EXPECT_EQ(llama2->config().bos_token, "<s>");
  EXPECT_EQ(llama2->config().add_bos_token, true);
  EXPECT_EQ(llama2->config().chat_template, "");
}

}  // namespace
}  // namespace hotswap
