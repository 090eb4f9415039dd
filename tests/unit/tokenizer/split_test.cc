// Pattern spans and split behaviours; expected pieces are what tokenizers' Split
// pre-tokenizer produces for the same pattern, behaviour and text (empty pieces dropped).
#include "tokenizer/split.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hotswap::tok {
namespace {

std::vector<std::string> split(const std::string& pattern, SplitBehavior behavior, const std::string& text,
                               bool invert = false) {
  std::vector<Span> spans = find_spans(Regex(pattern), text);
  if (invert) invert_spans(spans);
  std::vector<std::string> out;
  for (std::string_view piece : split_text(text, std::move(spans), behavior)) {
    if (!piece.empty()) out.emplace_back(piece);
  }
  return out;
}

using Pieces = std::vector<std::string>;

TEST(Split, Behaviours) {
  EXPECT_EQ(split("x*", SplitBehavior::kIsolated, "axxb"), (Pieces{"a", "xx", "b"}));
  EXPECT_EQ(split("x*", SplitBehavior::kRemoved, "axxb"), (Pieces{"a", "b"}));
  EXPECT_EQ(split("", SplitBehavior::kIsolated, "abc"), (Pieces{"a", "b", "c"}));
  EXPECT_EQ(split("(?=b)", SplitBehavior::kMergedWithNext, "abab"), (Pieces{"a", "ba", "b"}));
  EXPECT_EQ(split("x*", SplitBehavior::kMergedWithPrevious, "axxbx"), (Pieces{"axx", "bx"}));
  EXPECT_EQ(split("-", SplitBehavior::kMergedWithNext, "a-b--c"), (Pieces{"a", "-b", "-", "-c"}));
  EXPECT_EQ(split("-", SplitBehavior::kContiguous, "a-b--c"), (Pieces{"a", "-", "b", "--", "c"}));
  EXPECT_EQ(split("-", SplitBehavior::kRemoved, "a-b--c", /*invert=*/true), (Pieces{"-", "-", "-"}));
}

TEST(Split, ReplaceAll) {
  EXPECT_EQ(replace_all(Regex::literal(" "), "a b  c", "\xE2\x96\x81"), "a\xE2\x96\x81" "b\xE2\x96\x81\xE2\x96\x81" "c");
  EXPECT_EQ(replace_all(Regex(R"(\s+)"), " a \t b ", "_"), "_a_b_");
}

}  // namespace
}  // namespace hotswap::tok
