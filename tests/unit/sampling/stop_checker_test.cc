#include "sampling/stop_checker.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace hotswap {
namespace {

constexpr int32_t kEos = 2;
constexpr int32_t kText = 100;  // any ordinary token id

StopConditions conditions(int max_tokens, std::vector<std::string> stop_strings = {}) {
  StopConditions c;
  c.max_tokens = max_tokens;
  c.stop_strings = std::move(stop_strings);
  return c;
}

struct StreamResult {
  std::vector<std::string> emitted;  // text_to_emit per token
  std::optional<FinishReason> finish;
  int finished_at = -1;  // index of the token that finished the sequence
  std::string text() const {
    std::string all;
    for (const std::string& s : emitted) all += s;
    return all;
  }
};

// Feeds ordinary tokens with the given pieces until the checker finishes.
StreamResult feed(StopChecker& checker, const std::vector<std::string>& pieces) {
  StreamResult result;
  for (size_t i = 0; i < pieces.size(); ++i) {
    StopDecision d = checker.on_token(kText, pieces[i]);
    result.emitted.push_back(d.text_to_emit);
    if (d.finish) {
      result.finish = d.finish;
      result.finished_at = static_cast<int>(i);
      break;
    }
  }
  return result;
}

// ---- token-based stops -------------------------------------------------------------------

TEST(StopChecker, EosStopsAndItsTextIsNotEmitted) {
  StopChecker checker(conditions(10), {kEos});
  EXPECT_EQ(checker.on_token(kText, "Hi").text_to_emit, "Hi");
  const StopDecision d = checker.on_token(kEos, "</s>");
  EXPECT_EQ(d.finish, FinishReason::kStop);
  EXPECT_EQ(d.text_to_emit, "");
  EXPECT_TRUE(checker.finished());
}

TEST(StopChecker, IgnoreEosTreatsEosAsOrdinaryButKeepsStopTokenIds) {
  StopConditions c = conditions(10);
  c.ignore_eos = true;
  c.stop_token_ids = {7};
  StopChecker checker(c, {kEos});
  const StopDecision eos = checker.on_token(kEos, "<eos>");
  EXPECT_FALSE(eos.finish);
  EXPECT_EQ(eos.text_to_emit, "<eos>");
  const StopDecision stop = checker.on_token(7, "x");
  EXPECT_EQ(stop.finish, FinishReason::kStop);
  EXPECT_EQ(stop.text_to_emit, "");
}

TEST(StopChecker, EosReleasesTextHeldForAPossibleStopString) {
  StopChecker checker(conditions(10, {"</end>"}), {kEos});
  EXPECT_EQ(checker.on_token(kText, "ok </e").text_to_emit, "ok ");
  const StopDecision d = checker.on_token(kEos, "");
  EXPECT_EQ(d.finish, FinishReason::kStop);
  EXPECT_EQ(d.text_to_emit, "</e");
}

TEST(StopChecker, MaxTokensGivesLengthAndCountsEveryToken) {
  StopChecker checker(conditions(3), {kEos});
  EXPECT_FALSE(checker.on_token(kText, "a").finish);
  EXPECT_FALSE(checker.on_token(kText, "b").finish);
  const StopDecision d = checker.on_token(kText, "c");
  EXPECT_EQ(d.finish, FinishReason::kLength);
  EXPECT_EQ(d.text_to_emit, "c");
  EXPECT_EQ(checker.num_tokens(), 3);
}

TEST(StopChecker, EosOnTheLastAllowedTokenIsStopNotLength) {
  StopChecker checker(conditions(2), {kEos});
  checker.on_token(kText, "a");
  EXPECT_EQ(checker.on_token(kEos, "").finish, FinishReason::kStop);
}

TEST(StopChecker, LengthReleasesHeldText) {
  StopChecker checker(conditions(2, {"STOP"}), {kEos});
  EXPECT_EQ(checker.on_token(kText, "x S").text_to_emit, "x ");
  const StopDecision d = checker.on_token(kText, "T");
  EXPECT_EQ(d.finish, FinishReason::kLength);
  EXPECT_EQ(d.text_to_emit, "ST");
}

TEST(StopCheckerDeathTest, TokenAfterFinishIsAnInvariantFailure) {
  StopChecker checker(conditions(1), {kEos});
  checker.on_token(kText, "a");
  EXPECT_DEATH(checker.on_token(kText, "b"), "after the sequence finished");
}

// ---- stop strings ------------------------------------------------------------------------

TEST(StopChecker, StopStringInsideOnePieceTruncatesBeforeIt) {
  StopChecker checker(conditions(10, {"wor"}), {kEos});
  const StreamResult run = feed(checker, {"Hello world"});
  EXPECT_EQ(run.finish, FinishReason::kStop);
  EXPECT_EQ(run.text(), "Hello ");
}

TEST(StopChecker, StopStringAcrossTokenBoundaries) {
  StopChecker checker(conditions(10, {"lo wo"}), {kEos});
  const StreamResult run = feed(checker, {"He", "llo", " w", "orld", "!"});
  EXPECT_EQ(run.finish, FinishReason::kStop);
  EXPECT_EQ(run.finished_at, 3);
  EXPECT_EQ(run.text(), "Hel");
  // "He" is safe; "llo" → "l" is emitted and "lo" is held; " w" keeps holding.
  EXPECT_EQ(run.emitted, (std::vector<std::string>{"He", "l", "", ""}));
}

TEST(StopChecker, EarliestOccurrenceWinsAmongSeveralStopStrings) {
  StopChecker checker(conditions(10, {"world", "o w", "zzz"}), {kEos});
  const StreamResult run = feed(checker, {"hello world"});
  EXPECT_EQ(run.text(), "hell");
  EXPECT_EQ(run.finish, FinishReason::kStop);
}

TEST(StopChecker, FirstCompletedStopStringEndsGeneration) {
  // "c" completes before "abcd" could; the output ends before "c".
  StopChecker checker(conditions(10, {"abcd", "c"}), {kEos});
  const StreamResult run = feed(checker, {"ab", "c", "d"});
  EXPECT_EQ(run.finished_at, 1);
  EXPECT_EQ(run.text(), "ab");
}

TEST(StopChecker, StopStringAtVeryStartEmitsNothing) {
  StopChecker checker(conditions(10, {"###"}), {kEos});
  const StreamResult run = feed(checker, {"##", "# rest"});
  EXPECT_EQ(run.finish, FinishReason::kStop);
  EXPECT_EQ(run.text(), "");
  EXPECT_EQ(run.emitted, (std::vector<std::string>{"", ""}));
}

TEST(StopChecker, HeldPrefixIsReleasedOnceItCannotMatch) {
  StopChecker checker(conditions(10, {"</s>"}), {kEos});
  EXPECT_EQ(checker.on_token(kText, "a<").text_to_emit, "a");
  EXPECT_EQ(checker.on_token(kText, "/").text_to_emit, "");
  EXPECT_EQ(checker.on_token(kText, "x").text_to_emit, "</x");
  // A new partial match starting inside a piece is held again.
  EXPECT_EQ(checker.on_token(kText, " <<").text_to_emit, " <");
  EXPECT_EQ(checker.flush(), "<");
  EXPECT_EQ(checker.flush(), "");
  EXPECT_FALSE(checker.finished());
}

TEST(StopChecker, OverlappingPrefixKeepsTheLongestCandidate) {
  // After "aab" the tail "aab" is a prefix of "aabx"; emitting "a" would be wrong if "aabx"
  // later completes starting at the first "a".
  StopChecker checker(conditions(10, {"aabx"}), {kEos});
  EXPECT_EQ(checker.on_token(kText, "a").text_to_emit, "");
  EXPECT_EQ(checker.on_token(kText, "a").text_to_emit, "");
  EXPECT_EQ(checker.on_token(kText, "a").text_to_emit, "a");  // "aaa": only "aa" can still match
  EXPECT_EQ(checker.on_token(kText, "b").text_to_emit, "");
  const StopDecision d = checker.on_token(kText, "x");
  EXPECT_EQ(d.finish, FinishReason::kStop);
  EXPECT_EQ(d.text_to_emit, "");
}

TEST(StopChecker, WithoutStopStringsTextStreamsImmediately) {
  StopChecker checker(conditions(10, {""}), {kEos});  // the empty string is ignored
  EXPECT_EQ(checker.on_token(kText, "abc").text_to_emit, "abc");
  EXPECT_EQ(checker.on_token(kText, "").text_to_emit, "");
}

TEST(StopChecker, MultiByteUtf8StopStringAcrossPieces) {
  StopChecker checker(conditions(10, {"\xC3\xA9t\xC3\xA9"}), {kEos});  // "été"
  const StreamResult run = feed(checker, {"un \xC3\xA9", "t", "\xC3\xA9 chaud"});
  EXPECT_EQ(run.text(), "un ");
  EXPECT_EQ(run.finish, FinishReason::kStop);
}

// Oracle: the whole text, truncated at the earliest stop string present after the first
// token that completes one. The streamed pieces must concatenate to exactly that, and no
// piece may ever reveal text that a later stop would have cut.
TEST(StopChecker, RandomStreamsMatchWholeTextOracle) {
  std::mt19937 gen(123);
  const std::string alphabet = "abc";
  auto random_string = [&](int min_len, int max_len) {
    std::uniform_int_distribution<int> len(min_len, max_len);
    std::uniform_int_distribution<size_t> ch(0, alphabet.size() - 1);
    std::string s;
    for (int n = len(gen); n > 0; --n) s += alphabet[ch(gen)];
    return s;
  };
  int num_stopped = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<std::string> stops;
    for (int n = std::uniform_int_distribution<int>(1, 3)(gen); n > 0; --n) stops.push_back(random_string(2, 4));
    std::vector<std::string> pieces;
    for (int n = 0; n < 12; ++n) pieces.push_back(random_string(0, 3));

    std::string text;
    std::string expected;
    bool expect_stop = false;
    for (const std::string& piece : pieces) {
      text += piece;
      size_t at = std::string::npos;
      for (const std::string& s : stops) at = std::min(at, text.find(s));
      if (at != std::string::npos) {
        expected = text.substr(0, at);
        expect_stop = true;
        break;
      }
    }
    if (!expect_stop) expected = text;

    StopChecker checker(conditions(static_cast<int>(pieces.size()), stops), {kEos});
    const StreamResult run = feed(checker, pieces);
    ASSERT_TRUE(run.finish.has_value());
    EXPECT_EQ(*run.finish, expect_stop ? FinishReason::kStop : FinishReason::kLength) << "trial " << trial;
    EXPECT_EQ(run.text(), expected) << "trial " << trial;
    num_stopped += expect_stop;
  }
  EXPECT_GT(num_stopped, 500);  // both outcomes are well exercised
  EXPECT_LT(num_stopped, 1900);
}

}  // namespace
}  // namespace hotswap
