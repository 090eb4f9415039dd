// Character data with the Unicode versions tokenizers uses (checked against its output):
// Unicode 9 normalization, Unicode 16 lowercase, Unicode 8 punctuation, Unicode 17 numbers.
#include "tokenizer/unicode_props.h"

#include <gtest/gtest.h>

namespace hotswap::tok {
namespace {

TEST(UnicodeProps, NormalizationUsesUnicode9Tables) {
  EXPECT_EQ(normalize_unicode("\xEF\xAC\x81", NormalizationForm::kNfkc), "fi");          // U+FB01
  EXPECT_EQ(normalize_unicode("e\xCC\x81", NormalizationForm::kNfc), "\xC3\xA9");        // é
  EXPECT_EQ(normalize_unicode("\xC3\xA9", NormalizationForm::kNfd), "e\xCC\x81");
  EXPECT_EQ(normalize_unicode("\xE3\x8B\xBF", NormalizationForm::kNfkc), "\xE3\x8B\xBF");  // U+32FF (12.1) kept
  // U+1DF7 has combining class 0 in Unicode 9, so it is not reordered before U+1E000 (230).
  EXPECT_EQ(normalize_unicode("a\xF0\x9E\x80\x80\xE1\xB7\xB7", NormalizationForm::kNfd), "a\xF0\x9E\x80\x80\xE1\xB7\xB7");
}

TEST(UnicodeProps, LowercaseIsPerCodePointAndUnicode16) {
  EXPECT_EQ(to_lowercase("\xCE\xA3\xCE\xA3"), "\xCF\x83\xCF\x83");  // ΣΣ -> σσ, no final sigma
  EXPECT_EQ(to_lowercase("\xC4\xB0"), "i\xCC\x87");                  // İ -> i + U+0307
  EXPECT_EQ(to_lowercase("\xE1\xB2\x89"), "\xE1\xB2\x8A");            // U+1C89 -> U+1C8A (16.0)
}

TEST(UnicodeProps, CharacterClasses) {
  EXPECT_TRUE(is_whitespace(0x85));
  EXPECT_FALSE(is_whitespace(0x180E));
  EXPECT_TRUE(is_numeric(0x2167));    // Roman numeral eight (Nl)
  EXPECT_TRUE(is_numeric(0x11DE0));   // Unicode 17 digit
  EXPECT_TRUE(is_punctuation(0x166D));  // punctuation in Unicode 8, a symbol since
  EXPECT_FALSE(is_punctuation(0x061D));  // punctuation only since Unicode 14
  EXPECT_TRUE(is_unicode9_mark(0x0301));
  EXPECT_FALSE(is_unicode9_mark(0x11938));  // a Unicode 13 mark
  EXPECT_TRUE(is_word_char(0x200D));   // Rust regex \w has Join_Control
  EXPECT_FALSE(is_word_char('-'));
}

}  // namespace
}  // namespace hotswap::tok
