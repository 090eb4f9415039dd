#include "http/sse.h"

#include <gtest/gtest.h>

namespace hotswap::server {
namespace {

TEST(Sse, OneEventPerPayloadEndingWithABlankLine) {
  EXPECT_EQ(sse_event(R"({"a":1})"), "data: {\"a\":1}\n\n");
}

TEST(Sse, DoneTerminator) { EXPECT_EQ(sse_done(), "data: [DONE]\n\n"); }

TEST(Sse, LineBreaksInAPayloadBecomeSeveralDataLines) {
  EXPECT_EQ(sse_event("a\nb"), "data: a\ndata: b\n\n");
  EXPECT_EQ(sse_event("a\r\nb"), "data: a\ndata: b\n\n");
  EXPECT_EQ(sse_event("a\rb\n"), "data: a\ndata: b\ndata: \n\n");
}

TEST(Sse, EmptyPayload) { EXPECT_EQ(sse_event(""), "data: \n\n"); }

TEST(Sse, HeartbeatIsAComment) {
  const std::string h = sse_heartbeat();
  ASSERT_FALSE(h.empty());
  EXPECT_EQ(h.front(), ':');
  EXPECT_EQ(h.substr(h.size() - 2), "\n\n");
}

}  // namespace
}  // namespace hotswap::server
