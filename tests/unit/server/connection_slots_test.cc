#include "http/connection_slots.h"

#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace hotswap::server {
namespace {

using Verdict = ConnectionSlots::Verdict;

TEST(ConnectionSlots, ServerCapThenRelease) {
  ConnectionSlots slots;
  {
    ConnectionSlots::Slot a, b, c;
    EXPECT_EQ(slots.try_acquire("1.1.1.1", 2, 0, &a), Verdict::kAdmitted);
    EXPECT_EQ(slots.try_acquire("2.2.2.2", 2, 0, &b), Verdict::kAdmitted);
    EXPECT_EQ(slots.try_acquire("3.3.3.3", 2, 0, &c), Verdict::kServerFull);
    EXPECT_EQ(slots.open(), 2);
  }
  EXPECT_EQ(slots.open(), 0);
  EXPECT_EQ(slots.open_from("1.1.1.1"), 0);
}

TEST(ConnectionSlots, PerClientCapLeavesOthersIn) {
  ConnectionSlots slots;
  ConnectionSlots::Slot a1, a2, a3, b1;
  EXPECT_EQ(slots.try_acquire("10.0.0.1", 100, 2, &a1), Verdict::kAdmitted);
  EXPECT_EQ(slots.try_acquire("10.0.0.1", 100, 2, &a2), Verdict::kAdmitted);
  EXPECT_EQ(slots.try_acquire("10.0.0.1", 100, 2, &a3), Verdict::kClientFull);
  EXPECT_EQ(slots.try_acquire("10.0.0.2", 100, 2, &b1), Verdict::kAdmitted);
  EXPECT_EQ(slots.open_from("10.0.0.1"), 2);
  a1 = ConnectionSlots::Slot{};  // releasing one lets the client in again
  EXPECT_EQ(slots.open_from("10.0.0.1"), 1);
  EXPECT_EQ(slots.try_acquire("10.0.0.1", 100, 2, &a3), Verdict::kAdmitted);
  EXPECT_EQ(slots.open(), 3);
}

TEST(ConnectionSlots, MovedSlotReleasesOnce) {
  ConnectionSlots slots;
  ConnectionSlots::Slot a;
  ASSERT_EQ(slots.try_acquire("x", 4, 0, &a), Verdict::kAdmitted);
  ConnectionSlots::Slot b(std::move(a));
  ConnectionSlots::Slot c;
  c = std::move(b);
  EXPECT_EQ(slots.open(), 1);
  c = ConnectionSlots::Slot{};
  EXPECT_EQ(slots.open(), 0);
}

TEST(ConnectionSlots, ConcurrentAcquireNeverExceedsTheCap) {
  ConnectionSlots slots;
  constexpr int kThreads = 8, kRounds = 2000, kCap = 5;
  std::vector<std::thread> threads;
  std::atomic<int> over{0};
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        ConnectionSlots::Slot s;
        if (slots.try_acquire("a", kCap, 0, &s) == Verdict::kAdmitted && slots.open() > kCap) ++over;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(over.load(), 0);
  EXPECT_EQ(slots.open(), 0);
}

}  // namespace
}  // namespace hotswap::server
