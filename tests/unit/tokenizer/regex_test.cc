// Oniguruma semantics on PCRE2: the escapes and classes whose meaning differs between the
// engines, checked against what tokenizers' Oniguruma matches.
#include "tokenizer/regex.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace hotswap::tok {
namespace {

std::vector<std::string> matches(const Regex& regex, const std::string& text) {
  std::vector<std::string> out;
  for (const Regex::Match& m : regex.find_all(text)) out.push_back(text.substr(m.start, m.end - m.start));
  return out;
}

TEST(Regex, WhitespaceIsUnicodeWhiteSpace) {
  const Regex space(R"(\s+)");
  EXPECT_EQ(matches(space, "a\xC2\x85\x0B b"), (std::vector<std::string>{"\xC2\x85\x0B "}));  // NEL, VT
  EXPECT_TRUE(matches(space, "a\xE1\xA0\x8E" "b").empty());  // U+180E is not White_Space
  EXPECT_TRUE(matches(space, "a\x1C" "b").empty());
  const Regex non_space(R"([\S]+)");
  EXPECT_EQ(matches(non_space, "x\xE1\xA0\x8Ey z"), (std::vector<std::string>{"x\xE1\xA0\x8Ey", "z"}));
}

TEST(Regex, GptLookaheadSplitsTrailingSpaces) {
  const Regex gpt(R"(\s+(?!\S)|\s+)");
  // The run before a word leaves its last space to the word's own alternative (here \s+).
  EXPECT_EQ(matches(gpt, "a   b"), (std::vector<std::string>{"  ", " "}));
  EXPECT_EQ(matches(gpt, "a   "), (std::vector<std::string>{"   "}));
}

TEST(Regex, CaseInsensitiveContractions) {
  const Regex contraction(R"((?i:'s|'t|'re|'ve|'m|'ll|'d))");
  EXPECT_EQ(matches(contraction, "IT'S he'LL we'Re"), (std::vector<std::string>{"'S", "'LL", "'Re"}));
}

TEST(Regex, LettersIncludeCharactersNewerThanPcre2Tables) {
  const Regex letters(R"(\p{L}+)");
  // U+31350 (CJK Extension H, Unicode 15.0) and U+1C89 (Unicode 16.0) are letters to Oniguruma.
  EXPECT_EQ(matches(letters, "1\xF0\xB1\x8D\x90\xE1\xB2\x89" "2"), (std::vector<std::string>{"\xF0\xB1\x8D\x90\xE1\xB2\x89"}));
  const Regex not_letters(R"(\P{L}+)");
  EXPECT_EQ(matches(not_letters, "1\xF0\xB1\x8D\x90" "2"), (std::vector<std::string>{"1", "2"}));
}

TEST(Regex, ScriptNamesMeanScriptNotScriptExtensions) {
  // U+3001 IDEOGRAPHIC COMMA is Script=Common (its Script_Extensions include Han).
  const Regex han(R"(\p{Han}+)");
  EXPECT_EQ(matches(han, "\xE4\xB8\xAD\xE3\x80\x81\xE6\x96\x87"), (std::vector<std::string>{"\xE4\xB8\xAD", "\xE6\x96\x87"}));
}

TEST(Regex, WordAndDigitClassesFollowOniguruma) {
  const Regex word(R"(\w+)");
  EXPECT_EQ(matches(word, "x\xC2\xB2 a\xE2\x80\x8D" "b"), (std::vector<std::string>{"x\xC2\xB2", "a", "b"}));  // ², ZWJ
  const Regex digits(R"(\d+)");
  EXPECT_EQ(matches(digits, "a\xD9\xA3\xD9\xA4-\xF0\x90\xB5\x80"), (std::vector<std::string>{"\xD9\xA3\xD9\xA4", "\xF0\x90\xB5\x80"}));
  const Regex hex(R"(\h+)");  // hex digits, not horizontal space
  EXPECT_EQ(matches(hex, "0xBEEF g"), (std::vector<std::string>{"0", "BEEF"}));
}

TEST(Regex, EmptyMatchesFollowOnigurumaIteration) {
  // An empty match right where the previous match ended is skipped.
  EXPECT_EQ(matches(Regex("x*"), "axxb"), (std::vector<std::string>{"", "xx", ""}));
}

TEST(Regex, LiteralEscapesMetacharacters) {
  const Regex literal = Regex::literal("a.b(c)");
  EXPECT_EQ(matches(literal, "a.b(c) axb(c)"), (std::vector<std::string>{"a.b(c)"}));
}

TEST(Regex, InvalidPatternThrowsWithThePattern) {
  try {
    Regex bad("(unclosed");
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("/(unclosed/"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace hotswap::tok
