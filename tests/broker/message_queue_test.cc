#include "broker/message_queue.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace shardmq::broker {
namespace {

TEST(MessageQueueTest, IsFifoAcrossCompactionAndBursts) {
  MessageQueue<int> queue;
  EXPECT_TRUE(queue.empty());
  int next_in = 0;
  int next_out = 0;
  // Bursts of different sizes with partial drains exercise the compaction
  // (head past half the vector) and the release when empty.
  for (int burst : {1, 7, 100, 3, 1000, 2, 65}) {
    for (int i = 0; i < burst; ++i) queue.push_back(next_in++);
    while (queue.size() > static_cast<size_t>(burst / 3)) {
      ASSERT_EQ(queue.front(), next_out++);
      queue.pop_front();
    }
  }
  while (!queue.empty()) {
    ASSERT_EQ(queue.front(), next_out++);
    queue.pop_front();
  }
  EXPECT_EQ(next_out, next_in);
  EXPECT_EQ(queue.size(), 0u);
}

TEST(MessageQueueTest, PopReleasesWhatTheElementHeldAtOnce) {
  MessageQueue<std::shared_ptr<int>> queue;
  auto first = std::make_shared<int>(1);
  queue.push_back(first);
  queue.push_back(std::make_shared<int>(2));
  EXPECT_EQ(first.use_count(), 2);
  queue.pop_front();
  // A popped message's reference is dropped when popped, not at compaction.
  EXPECT_EQ(first.use_count(), 1);
  EXPECT_EQ(*queue.front(), 2);
}

TEST(MessageQueueTest, IteratesOldestFirstAcrossTheRingsWrapAndGrowth) {
  MessageQueue<int> queue;
  // Wrap the ring (pop 3, push 5 into a capacity of 8), then grow it while
  // wrapped: iteration and pops still see insertion order.
  for (int i = 0; i < 6; ++i) queue.push_back(i);
  for (int i = 0; i < 3; ++i) queue.pop_front();
  for (int i = 6; i < 11; ++i) queue.push_back(i);
  std::vector<int> seen;
  for (int v : queue) seen.push_back(v);
  EXPECT_EQ(seen, std::vector<int>({3, 4, 5, 6, 7, 8, 9, 10}));
  for (int i = 11; i < 40; ++i) queue.push_back(i);
  seen.clear();
  for (int v : queue) seen.push_back(v);
  ASSERT_EQ(seen.size(), 37u);
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], static_cast<int>(i) + 3);

  MessageQueue<int> moved = std::move(queue);
  EXPECT_TRUE(queue.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_EQ(moved.size(), 37u);
  EXPECT_EQ(moved.front(), 3);
  queue.push_back(99);  // a moved-from queue is usable
  EXPECT_EQ(queue.front(), 99);
}

}  // namespace
}  // namespace shardmq::broker
