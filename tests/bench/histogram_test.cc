#include "histogram.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace shardmq::bench {
namespace {

TEST(LatencyHistogramTest, BucketsHoldTheirValuesWithinOnePercent) {
  const uint64_t values[] = {0ull,           1ull,       127ull,        128ull,
                             129ull,         1000ull,    65535ull,      1'000'000ull,
                             123'456'789ull, 1ull << 40, UINT64_MAX / 3};
  for (uint64_t v : values) {
    const int b = LatencyHistogram::BucketOf(v);
    const uint64_t upper = LatencyHistogram::BucketUpper(b);
    EXPECT_GE(upper, v) << v;
    EXPECT_LE(static_cast<double>(upper - v), static_cast<double>(v) / 64.0 + 1) << v;
    if (b > 0) {
      EXPECT_LT(LatencyHistogram::BucketUpper(b - 1), v) << v;
    }
  }
}

TEST(LatencyHistogramTest, PercentilesOfAUniformSpread) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 10'000; ++v) h.Record(v * 1000);  // 1 us .. 10 ms.
  EXPECT_EQ(h.count(), 10'000u);
  EXPECT_EQ(h.min(), 1000u);
  EXPECT_EQ(h.max(), 10'000'000u);
  EXPECT_NEAR(h.Percentile(0.5), 5'000'000, 5'000'000 * 0.02);
  EXPECT_NEAR(h.Percentile(0.99), 9'900'000, 9'900'000 * 0.02);
  EXPECT_NEAR(h.Percentile(0.999), 9'990'000, 9'990'000 * 0.02);
  EXPECT_EQ(h.Percentile(1.0), 10'000'000u);
  EXPECT_NEAR(h.mean(), 5'000'500, 1);
}

TEST(LatencyHistogramTest, EmptyReportsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.Percentile(0.99), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
}

TEST(LatencyHistogramTest, MergeEqualsRecordingEverythingInOne) {
  LatencyHistogram a, b, all;
  for (uint64_t v = 0; v < 5000; ++v) {
    (v % 3 ? a : b).Record(v * 37);
    all.Record(v * 37);
  }
  a.Merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.min(), all.min());
  EXPECT_EQ(a.max(), all.max());
  for (double q : {0.1, 0.5, 0.9, 0.99, 0.999}) EXPECT_EQ(a.Percentile(q), all.Percentile(q));
}

TEST(IntendedSendTest, ScheduleFollowsTheRate) {
  EXPECT_EQ(IntendedSendNs(1000, 1000.0, 0), 1000u);
  EXPECT_EQ(IntendedSendNs(1000, 1000.0, 3), 1000u + 3'000'000u);
  EXPECT_EQ(IntendedSendNs(0, 20.0, 20), 1'000'000'000u);
}

// A publisher at 1,000 msg/s (1 ms apart) whose sender stalls for 100 ms
// once; each message then takes 100 us through the broker. Messages due
// during the stall go out at its end. Measured from the actual send time
// (coordinated omission) only the stall's victims are invisible; measured
// from the intended send time they show up, and agree with HdrHistogram's
// back-filling correction.
TEST(CoordinatedOmissionTest, IntendedTimeExposesTheStall) {
  constexpr uint64_t kInterval = 1'000'000, kService = 100'000, kStall = 100'000'000;
  constexpr uint64_t kStallAt = 500'000'000;  // Message 500 is due when the stall starts.
  LatencyHistogram naive, intended, corrected;
  for (uint64_t seq = 0; seq < 1000; ++seq) {
    const uint64_t due = IntendedSendNs(0, 1000.0, seq);
    uint64_t actual = due;
    if (due >= kStallAt && due < kStallAt + kStall) actual = kStallAt + kStall;
    const uint64_t arrival = actual + kService;
    naive.Record(arrival - actual);
    intended.Record(arrival - due);
  }
  // Closed-loop view of the same run: one request stalled, then it resumes.
  for (uint64_t seq = 0; seq < 900; ++seq) {
    corrected.RecordCorrected(seq == 500 ? kStall + kService : kService, kInterval);
  }
  EXPECT_EQ(naive.max(), kService);                      // The stall is invisible.
  EXPECT_NEAR(intended.max(), kStall + kService, 1);     // The first victim waited 100 ms.
  EXPECT_GT(intended.Percentile(0.95), 40 * kInterval);  // 10% of messages were delayed.
  EXPECT_LT(naive.Percentile(0.999), 2 * kService);
  // The back-filled closed-loop histogram sees about the same tail.
  EXPECT_EQ(corrected.count(), 900u + 99u);  // 99.1 ms, 98.1 ms, ... 1.1 ms.
  EXPECT_NEAR(static_cast<double>(corrected.Percentile(0.95)),
              static_cast<double>(intended.Percentile(0.95)), 0.05 * intended.Percentile(0.95));
}

}  // namespace
}  // namespace shardmq::bench
