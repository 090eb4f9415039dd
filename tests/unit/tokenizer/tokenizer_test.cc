#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

namespace hotswap {
namespace {

TEST(Tokenizer, Placeholder) { SUCCEED(); }

}  // namespace
}  // namespace hotswap
