#include "seq_tracker.h"

#include "gtest/gtest.h"

namespace shardmq::bench {
namespace {

TEST(SeqTrackerTest, InOrderStreamIsClean) {
  SeqTracker t;
  for (uint64_t s = 0; s < 1000; ++s) EXPECT_EQ(t.Record(s), Arrival::kInOrder);
  EXPECT_EQ(t.unique(), 1000u);
  EXPECT_EQ(t.Lost(1000), 0u);
  EXPECT_EQ(t.duplicates(), 0u);
  EXPECT_EQ(t.reordered(), 0u);
}

TEST(SeqTrackerTest, GapIsLossNotReordering) {
  SeqTracker t;
  for (uint64_t s : {0, 1, 2, 5, 6}) EXPECT_EQ(t.Record(s), Arrival::kInOrder);
  EXPECT_EQ(t.Lost(7), 2u);  // 3 and 4.
  EXPECT_EQ(t.reordered(), 0u);
}

TEST(SeqTrackerTest, TailLossCountsUpToWhatWasSent) {
  SeqTracker t;
  for (uint64_t s = 0; s < 100; ++s) t.Record(s);
  EXPECT_EQ(t.Lost(130), 30u);
  EXPECT_EQ(SeqTracker().Lost(5), 5u);  // Nothing arrived.
}

TEST(SeqTrackerTest, DuplicateIsNotCountedTwice) {
  SeqTracker t;
  t.Record(0);
  t.Record(1);
  EXPECT_EQ(t.Record(1), Arrival::kDuplicate);
  EXPECT_EQ(t.Record(0), Arrival::kDuplicate);
  EXPECT_EQ(t.duplicates(), 2u);
  EXPECT_EQ(t.unique(), 2u);
  EXPECT_EQ(t.received(), 4u);
  EXPECT_EQ(t.reordered(), 0u);
  EXPECT_EQ(t.Lost(2), 0u);
}

TEST(SeqTrackerTest, LateArrivalIsReorderedNotLost) {
  SeqTracker t;
  t.Record(0);
  t.Record(2);
  EXPECT_EQ(t.Record(1), Arrival::kReordered);
  EXPECT_EQ(t.reordered(), 1u);
  EXPECT_EQ(t.Lost(3), 0u);
  EXPECT_EQ(t.duplicates(), 0u);
}

TEST(SeqTrackerTest, LargeSequenceNumbersAcrossWords) {
  SeqTracker t;
  t.Record(63);
  t.Record(64);
  t.Record(10'000);
  EXPECT_TRUE(t.Seen(64));
  EXPECT_FALSE(t.Seen(65));
  EXPECT_EQ(t.Lost(10'001), 10'001u - 3);
  EXPECT_EQ(t.Lost(64), 63u);
}

TEST(SeqTrackerTest, MergeOfASharedGroupFindsCrossMemberDuplicates) {
  SeqTracker a, b;
  for (uint64_t s = 0; s < 100; s += 2) a.Record(s);  // Even to member a.
  for (uint64_t s = 1; s < 100; s += 2) b.Record(s);  // Odd to member b.
  b.Record(50);                                       // Also delivered to b: a duplicate.
  SeqTracker group;
  group.Merge(a);
  group.Merge(b);
  EXPECT_EQ(group.unique(), 100u);
  EXPECT_EQ(group.duplicates(), 1u);
  EXPECT_EQ(group.Lost(100), 0u);
  EXPECT_EQ(group.Lost(101), 1u);
}

}  // namespace
}  // namespace shardmq::bench
