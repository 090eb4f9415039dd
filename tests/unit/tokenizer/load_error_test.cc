// Malformed and unsupported tokenizer files: each is a LoadError that names the file and
// the field at fault.
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <string>

#include "core/load_error.h"

namespace hotswap {
namespace {

// A valid minimal byte-level BPE; `patch` replaces one top-level member.
std::string minimal_tokenizer(const std::string& member = "", const std::string& value = "") {
  std::string members[][2] = {
      {"version", R"("1.0")"},
      {"added_tokens", "[]"},
      {"normalizer", "null"},
      {"pre_tokenizer", R"({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true})"},
      {"post_processor", "null"},
      {"decoder", R"({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true})"},
      {"model", R"({"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]})"}};
  std::string json = "{";
  for (auto& [name, body] : members) {
    if (json.size() > 1) json += ", ";
    json += "\"" + name + "\": " + (name == member ? value : body);
  }
  return json + "}";
}

// The LoadError message of building from `json`, or "" if it loaded.
std::string load_error(const std::string& json, const std::string& config = "") {
  try {
    Tokenizer::from_json(json, config);
  } catch (const LoadError& e) {
    return e.what();
  }
  return "";
}

TEST(TokenizerLoad, MinimalFileLoads) {
  ASSERT_EQ(load_error(minimal_tokenizer()), "");
  EXPECT_EQ(Tokenizer::from_json(minimal_tokenizer(), "")->encode("abba", false), (std::vector<int32_t>{2, 1, 0}));
}

TEST(TokenizerLoad, InvalidJsonIsALoadError) {
  const std::string message = load_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, )");
  EXPECT_NE(message.find("tokenizer.json"), std::string::npos) << message;
  EXPECT_NE(message.find("invalid JSON"), std::string::npos) << message;
  EXPECT_NE(load_error("[1, 2]").find("top level: expected an object"), std::string::npos);
  EXPECT_NE(load_error("").find("invalid JSON"), std::string::npos);
}

TEST(TokenizerLoad, MissingModelNamesTheField) {
  EXPECT_NE(load_error(R"({"version": "1.0"})").find("missing field 'model'"), std::string::npos);
}

TEST(TokenizerLoad, UnsupportedComponentsNameTheirField) {
  EXPECT_NE(load_error(minimal_tokenizer("model", R"({"type": "Unigram", "vocab": []})"))
                .find("model.type: unsupported model type 'Unigram'"),
            std::string::npos);
  EXPECT_NE(load_error(minimal_tokenizer("normalizer", R"({"type": "Precompiled", "precompiled_charsmap": ""})"))
                .find("normalizer.type: unsupported normalizer type 'Precompiled'"),
            std::string::npos);
  const std::string nested = load_error(minimal_tokenizer(
      "pre_tokenizer", R"({"type": "Sequence", "pretokenizers": [{"type": "Digits"}, {"type": "UnicodeScripts"}]})"));
  EXPECT_NE(nested.find("pre_tokenizer.pretokenizers[1].type: unsupported pre-tokenizer type 'UnicodeScripts'"),
            std::string::npos)
      << nested;
  EXPECT_NE(load_error(minimal_tokenizer("decoder", R"({"type": "WordPiece", "prefix": "##"})"))
                .find("decoder.type: unsupported decoder type 'WordPiece'"),
            std::string::npos);
  EXPECT_NE(load_error(minimal_tokenizer("post_processor", R"({"type": "Mystery"})"))
                .find("post_processor.type: unsupported post-processor type 'Mystery'"),
            std::string::npos);
}

TEST(TokenizerLoad, MalformedFieldsNameTheirField) {
  EXPECT_NE(load_error(minimal_tokenizer("model", R"({"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]})"))
                .find("model.merges[0]: token 'b' is not in the vocabulary"),
            std::string::npos);
  EXPECT_NE(load_error(minimal_tokenizer("model", R"({"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a  b"]})"))
                .find("model.merges[0]: expected \"<left> <right>\" with exactly one space"),
            std::string::npos);
  EXPECT_NE(load_error(minimal_tokenizer("model", R"({"type": "BPE", "vocab": {"a": "zero"}, "merges": []})"))
                .find("model.vocab[\"a\"]: expected an integer id"),
            std::string::npos);
  EXPECT_NE(load_error(minimal_tokenizer("model", R"({"type": "BPE", "vocab": {"a": 0}, "merges": [], "unk_token": "<unk>"})"))
                .find("model.unk_token: unk_token '<unk>' is not in the vocabulary"),
            std::string::npos);
  EXPECT_NE(load_error(minimal_tokenizer("model", R"({"type": "BPE", "vocab": {"a": 0}, "merges": [], "dropout": 0.1})"))
                .find("model.dropout"),
            std::string::npos);
  const std::string regex = load_error(minimal_tokenizer(
      "pre_tokenizer", R"({"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated", "invert": false})"));
  EXPECT_NE(regex.find("pre_tokenizer.pattern.Regex: regex /(unclosed/ does not compile"), std::string::npos) << regex;
  EXPECT_NE(load_error(minimal_tokenizer(
                           "pre_tokenizer", R"({"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Sideways"})"))
                .find("pre_tokenizer.behavior: unknown split behavior 'Sideways'"),
            std::string::npos);
  EXPECT_NE(load_error(minimal_tokenizer("added_tokens", R"([{"id": 5, "special": true}])"))
                .find("added_tokens[0]: missing field 'content'"),
            std::string::npos);
  EXPECT_NE(load_error(minimal_tokenizer("version", R"("2.0")")).find("version: unknown tokenizer.json version"),
            std::string::npos);
}

TEST(TokenizerLoad, BadTokenizerConfigNamesTheFieldInThatFile) {
  const std::string message = load_error(minimal_tokenizer(), R"({"bos_token": 7})");
  EXPECT_NE(message.find("tokenizer_config.json: bos_token: expected a string"), std::string::npos) << message;
  EXPECT_NE(load_error(minimal_tokenizer(), "{oops").find("tokenizer_config.json: invalid JSON"), std::string::npos);
}

TEST(TokenizerLoad, MissingFileNamesThePath) {
  try {
    Tokenizer::load("/nonexistent/dir/tokenizer.json");
    FAIL() << "expected a LoadError";
  } catch (const LoadError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/tokenizer.json"), std::string::npos) << e.what();
  }
}

TEST(TokenizerLoad, DeeplyNestedSequencesAreRejected) {
  std::string nested = R"({"type": "Fuse"})";
  for (int i = 0; i < 100; ++i) nested = R"({"type": "Sequence", "decoders": [)" + nested + "]}";
  EXPECT_NE(load_error(minimal_tokenizer("decoder", nested)).find("nested deeper than"), std::string::npos);
}

}  // namespace
}  // namespace hotswap
