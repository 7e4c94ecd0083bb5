// AmqpLink without a RabbitMQ: option checks, and the outgoing buffer's
// bound (QoS 0 dropped first, QoS 1/2 only when no QoS 0 is left). The link
// against a real RabbitMQ is tested by tests/integration/test_cluster.py.
#include "cluster/amqp_link.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace shardmq::cluster {
namespace {

AmqpLinkOptions Options(size_t max_buffered = 4) {
  AmqpLinkOptions options;
  // Port 1 on loopback: nothing listens, the link would only retry.
  options.url = "amqp://guest:guest@127.0.0.1:1/";
  options.node_id = "n1";
  options.max_buffered = max_buffered;
  return options;
}

TEST(AmqpLink, RefusesBadOptions) {
  auto deliver = [](std::string_view, const SharedSource*) { return true; };
  AmqpLinkOptions options = Options();
  options.url = "http://example.com";
  auto link = AmqpLink::Create(options, deliver);
  ASSERT_FALSE(link.ok());
  EXPECT_NE(link.status().message().find("--cluster-amqp=http://example.com"), std::string::npos);
  options = Options();
  options.node_id = "";
  EXPECT_FALSE(AmqpLink::Create(options, deliver).ok());
  options = Options(0);
  EXPECT_FALSE(AmqpLink::Create(options, deliver).ok());
  EXPECT_TRUE(AmqpLink::Create(Options(), deliver).ok());
}

TEST(AmqpLink, FullBufferDropsQos0First) {
  auto link =
      AmqpLink::Create(Options(4), [](std::string_view, const SharedSource*) { return true; });
  ASSERT_TRUE(link.ok());
  // Not started: everything stays in the buffer.
  (*link)->Publish("a", false, 0, "q0-old");
  (*link)->Publish("a", false, 1, "q1");
  (*link)->Publish("a", false, 2, "q2");
  (*link)->Publish("a", false, 1, "q1b");
  // Full. A QoS 0 newcomer is dropped itself.
  (*link)->Publish("a", false, 0, "q0-new");
  EXPECT_EQ((*link)->Stats().dropped_qos0, 1u);
  // A QoS 1 newcomer evicts the buffered QoS 0 message.
  (*link)->Publish("a", false, 1, "q1c");
  EXPECT_EQ((*link)->Stats().dropped_qos0, 2u);
  EXPECT_EQ((*link)->Stats().dropped_qos12, 0u);
  // Only QoS 1/2 left: the newcomer is dropped, counted as QoS 1/2.
  (*link)->Publish("a", false, 2, "q2b");
  EXPECT_EQ((*link)->Stats().dropped_qos12, 1u);
}

// A retained message is two AMQP messages: "r" for every node's queue, and
// a copy with the topic's key for the shared queues.
TEST(AmqpLink, RetainedMessageIsBufferedTwice) {
  auto link =
      AmqpLink::Create(Options(4), [](std::string_view, const SharedSource*) { return true; });
  ASSERT_TRUE(link.ok());
  (*link)->Publish("a", true, 1, "kept");
  EXPECT_EQ((*link)->Stats().buffered, 2u);
  (*link)->Publish("a", false, 1, "plain");
  EXPECT_EQ((*link)->Stats().buffered, 3u);
}

TEST(AmqpLink, StartsAndStopsWithoutRabbitMq) {
  auto link =
      AmqpLink::Create(Options(), [](std::string_view, const SharedSource*) { return true; });
  ASSERT_TRUE(link.ok());
  (*link)->Start();
  (*link)->FilterAdded("a/+");
  (*link)->Publish("a/b", false, 1, "x");
  (*link)->Stop();
  EXPECT_FALSE((*link)->Stats().connected);
}

// Many shard-like threads publishing and changing interest while the link
// thread retries its connection: for ThreadSanitizer, and the drop count
// adds up.
TEST(AmqpLink, ConcurrentProducers) {
  auto link =
      AmqpLink::Create(Options(1000), [](std::string_view, const SharedSource*) { return true; });
  ASSERT_TRUE(link.ok());
  (*link)->Start();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&link, t] {
      for (int i = 0; i < 2000; ++i) {
        (*link)->Publish("a/b", false, static_cast<uint8_t>(i % 3), std::string(16, 'x'));
        if (i % 100 == 0) {
          const std::string filter = "f/" + std::to_string(t) + "/+";
          (*link)->FilterAdded(filter);
          (*link)->SharedAdded("g", filter);
          (*link)->FilterRemoved(filter);
          (*link)->SharedRemoved("g", filter);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const AmqpLinkStats stats = (*link)->Stats();
  // Nothing is published without RabbitMQ: all but the buffer was dropped.
  EXPECT_EQ(stats.buffered, 1000u);
  EXPECT_EQ(stats.dropped_qos0 + stats.dropped_qos12, 4u * 2000u - 1000u);
  (*link)->Stop();
}

}  // namespace
}  // namespace shardmq::cluster
