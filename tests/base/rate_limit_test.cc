#include "base/rate_limit.h"

#include <gtest/gtest.h>

namespace shardmq::base {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

TEST(RateLimitTest, BurstComesAtOnceThenTheRate) {
  RateLimit limit(/*rate=*/10, /*burst=*/5);
  const int64_t t0 = 100 * kSecond;
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(limit.TryTake(t0)) << i;
  EXPECT_FALSE(limit.TryTake(t0));
  // One unit per 100 ms comes back.
  EXPECT_FALSE(limit.TryTake(t0 + kSecond / 20));
  EXPECT_TRUE(limit.TryTake(t0 + kSecond / 10));
  EXPECT_FALSE(limit.TryTake(t0 + kSecond / 10));
}

TEST(RateLimitTest, SustainedRateIsExactlyTheRate) {
  RateLimit limit(/*rate=*/100, /*burst=*/1);
  int taken = 0;
  // Ask every millisecond for ten seconds.
  for (int64_t t = 0; t < 10 * kSecond; t += kSecond / 1000) taken += limit.TryTake(t) ? 1 : 0;
  EXPECT_GE(taken, 999);
  EXPECT_LE(taken, 1001);
}

TEST(RateLimitTest, RefusedEventsCostNothing) {
  RateLimit limit(/*rate=*/1, /*burst=*/1);
  EXPECT_TRUE(limit.TryTake(0));
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(limit.TryTake(kSecond / 2));
  EXPECT_TRUE(limit.TryTake(kSecond));
}

TEST(RateLimitTest, TakeReportsHowLongToWait) {
  RateLimit limit(/*rate=*/1000, /*burst=*/1000);  // bytes per second
  EXPECT_EQ(limit.Take(0, 1000), 0);               // the burst
  EXPECT_EQ(limit.Take(0, 500), kSecond / 2);      // half a second over
  EXPECT_FALSE(limit.Idle(kSecond));
  EXPECT_TRUE(limit.Idle(kSecond + kSecond / 2));
  EXPECT_EQ(limit.Take(3 * kSecond, 10), 0);  // idle time refilled it
}

TEST(RateLimitTest, CostLargerThanTheBurstIsPaidOffOverTime) {
  RateLimit limit(/*rate=*/100, /*burst=*/10);
  EXPECT_FALSE(limit.TryTake(0, 11));
  EXPECT_EQ(limit.Take(0, 110), kSecond);  // 1.1 s of rate minus 0.1 s of burst
}

}  // namespace
}  // namespace shardmq::base
