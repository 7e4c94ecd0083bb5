#include "shard/timer_heap.h"

#include <vector>

#include "gtest/gtest.h"

namespace shardmq::shard {
namespace {

using std::chrono::milliseconds;

TEST(TimerHeapTest, FiresInDeadlineOrder) {
  TimerHeap h;
  const Clock::time_point t0{};
  std::vector<int> fired;
  h.Schedule(t0 + milliseconds(30), [&] { fired.push_back(3); });
  h.Schedule(t0 + milliseconds(10), [&] { fired.push_back(1); });
  h.Schedule(t0 + milliseconds(20), [&] { fired.push_back(2); });
  EXPECT_EQ(h.NextDeadline(), t0 + milliseconds(10));
  EXPECT_EQ(h.RunExpired(t0 + milliseconds(5)), 0u);
  EXPECT_EQ(h.RunExpired(t0 + milliseconds(20)), 2u);
  EXPECT_EQ(h.RunExpired(t0 + milliseconds(100)), 1u);
  EXPECT_EQ(fired, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(h.NextDeadline(), Clock::time_point::max());
}

TEST(TimerHeapTest, CancelPreventsFiring) {
  TimerHeap h;
  const Clock::time_point t0{};
  int fired = 0;
  TimerId a = h.Schedule(t0 + milliseconds(1), [&] { ++fired; });
  h.Schedule(t0 + milliseconds(2), [&] { ++fired; });
  EXPECT_TRUE(h.Cancel(a));
  EXPECT_FALSE(h.Cancel(a));
  EXPECT_EQ(h.size(), 1u);
  EXPECT_EQ(h.RunExpired(t0 + milliseconds(10)), 1u);
  EXPECT_EQ(fired, 1);
}

TEST(TimerHeapTest, ManyCancelsCompact) {
  TimerHeap h;
  const Clock::time_point t0{};
  std::vector<TimerId> ids;
  for (int i = 0; i < 10000; ++i) ids.push_back(h.Schedule(t0 + milliseconds(i), [] {}));
  for (int i = 0; i < 10000; i += 2) h.Cancel(ids[i]);
  EXPECT_EQ(h.size(), 5000u);
  EXPECT_EQ(h.RunExpired(t0 + milliseconds(20000)), 5000u);
}

TEST(TimerHeapTest, CallbackMaySchedule) {
  TimerHeap h;
  const Clock::time_point t0{};
  int fired = 0;
  h.Schedule(t0, [&] {
    ++fired;
    h.Schedule(t0, [&] { ++fired; });
  });
  EXPECT_EQ(h.RunExpired(t0), 1u);
  EXPECT_EQ(h.RunExpired(t0), 1u);
  EXPECT_EQ(fired, 2);
}

}  // namespace
}  // namespace shardmq::shard
