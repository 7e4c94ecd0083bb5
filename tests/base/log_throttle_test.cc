#include "base/log_throttle.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace shardmq::base {
namespace {

TEST(LogThrottleTest, OneLinePerSecondAndTheRestCounted) {
  LogThrottle throttle;
  uint64_t skipped = 99;
  ASSERT_TRUE(throttle.Allow(&skipped));
  EXPECT_EQ(skipped, 0u);
  for (int i = 0; i < 500; ++i) EXPECT_FALSE(throttle.Allow(&skipped));
  // A second later the next line carries the count of those left out.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  ASSERT_TRUE(throttle.Allow(&skipped));
  EXPECT_EQ(skipped, 500u);
}

TEST(LogThrottleTest, ThreadsRacingGetOneLineBetweenThem) {
  LogThrottle throttle;
  std::atomic<int> allowed{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      uint64_t skipped = 0;
      for (int i = 0; i < 1000; ++i) {
        if (throttle.Allow(&skipped)) allowed.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  // At most one line per started second, however the threads interleaved.
  const auto seconds =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start)
          .count();
  EXPECT_GE(allowed.load(), 1);
  EXPECT_LE(allowed.load(), seconds + 1);
}

}  // namespace
}  // namespace shardmq::base
