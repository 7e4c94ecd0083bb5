#include "broker/message_queue.h"

#include <gtest/gtest.h>

#include <memory>

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

}  // namespace
}  // namespace shardmq::broker
