// Python text semantics the interpreter relies on; expected strings are CPython 3.11's.
#include "chat/py_text.h"

#include <gtest/gtest.h>

namespace hotswap::jinja {
namespace {

TEST(PyText, FloatReprMatchesCPython) {
  const std::pair<double, const char*> cases[] = {
      {0.0, "0.0"},       {-0.0, "-0.0"},
      {1.0, "1.0"},       {0.1, "0.1"},
      {1.0 / 3, "0.3333333333333333"},
      {1e16, "1e+16"},    {1e15, "1000000000000000.0"},
      {1234567890123456.0, "1234567890123456.0"},
      {12345678901234567.0, "1.2345678901234568e+16"},
      {1e-4, "0.0001"},   {1e-5, "1e-05"},
      {1.5e-7, "1.5e-07"}, {2.5e300, "2.5e+300"},
      {5e-324, "5e-324"}, {1.7976931348623157e308, "1.7976931348623157e+308"},
      {-2.5, "-2.5"},     {100.0, "100.0"},
  };
  for (const auto& [value, expected] : cases) EXPECT_EQ(py_float_repr(value), expected) << expected;
}

TEST(PyText, StringReprChoosesQuotesAndEscapes) {
  EXPECT_EQ(py_repr_string("it's"), "\"it's\"");
  EXPECT_EQ(py_repr_string("a\"b"), "'a\"b'");
  EXPECT_EQ(py_repr_string("both'\""), "'both\\'\"'");
  EXPECT_EQ(py_repr_string(std::string("\x00\x7f\xc2\x85\xc2\xa0\xe2\x80\x8b\xf0\x9f\x98\x80\xc3\xa9\\", 16)),
            "'\\x00\\x7f\\x85\\xa0\\u200b\xf0\x9f\x98\x80\xc3\xa9\\\\'");
}

TEST(PyText, SlicePositionsFollowSliceIndices) {
  EXPECT_EQ(slice_positions(10, std::nullopt, std::nullopt, -1),
            (std::vector<int64_t>{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}));
  EXPECT_EQ(slice_positions(5, -2, std::nullopt, std::nullopt), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(slice_positions(5, 10, -10, -2), (std::vector<int64_t>{4, 2, 0}));
  EXPECT_EQ(slice_positions(5, 1, 4, 2), (std::vector<int64_t>{1, 3}));
  EXPECT_TRUE(slice_positions(0, std::nullopt, std::nullopt, -1).empty());
  EXPECT_THROW(slice_positions(3, std::nullopt, std::nullopt, 0), std::invalid_argument);
}

TEST(PyText, StripUsesPythonWhitespace) {
  EXPECT_EQ(py_strip("\xc2\xa0 x\t\xe3\x80\x80", std::nullopt, true, true), "x");  // NBSP, ideographic space
  EXPECT_EQ(py_strip("xxaxx", std::string("x"), true, false), "axx");
  EXPECT_EQ(py_strip("\xe2\x80\x8bx", std::nullopt, true, true), "\xe2\x80\x8bx");  // ZWSP is not whitespace
}

TEST(PyText, Utf8Validation) {
  EXPECT_TRUE(is_valid_utf8("h\xc3\xa9llo \xf0\x9f\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xc3"));              // truncated
  EXPECT_FALSE(is_valid_utf8("\xc0\x80"));          // overlong
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_EQ(utf8_length("h\xc3\xa9\xf0\x9f\x98\x80"), 3u);
}

TEST(PyText, CaseMappingBeyondAscii) {
  EXPECT_EQ(py_upper("stra\xc3\x9f" "e \xc3\xa9"), "STRASSE \xc3\x89");
  EXPECT_EQ(py_lower("\xc3\x89" "COLE \xce\xa9"), "\xc3\xa9" "cole \xcf\x89");
  EXPECT_EQ(py_title("they're bill's"), "They'Re Bill'S");
}

}  // namespace
}  // namespace hotswap::jinja
