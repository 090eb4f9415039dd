#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

namespace hotswap {
namespace {

TEST(IncrementalDecoder, Placeholder) { SUCCEED(); }

}  // namespace
}  // namespace hotswap
