// Options::durability through the embedding API: retained messages published
// by an inline client come back in a new Broker on the same data_dir, with a
// different shard count, before it serves; mode kNone stores nothing.

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "shardmq/broker.h"
#include "shardmq/inline_client.h"
#include "temp_dir.h"

namespace shardmq {
namespace {

using RetainedSet = std::map<std::string, std::pair<std::string, int>>;

class DurabilityTest : public ::testing::Test {
 protected:
  std::unique_ptr<Broker> Start(int shards, Options::Durability::Mode mode) {
    Options options;
    options.shards = shards;
    options.listeners = {"127.0.0.1:0"};
    options.durability.data_dir = dir_;
    options.durability.mode = mode;
    auto broker = Broker::Create(options);
    EXPECT_TRUE(broker.ok()) << broker.status();
    if (!broker.ok()) return nullptr;
    absl::Status started = (*broker)->Start();
    EXPECT_TRUE(started.ok()) << started;
    return started.ok() ? *std::move(broker) : nullptr;
  }

  static RetainedSet Retained(Broker& broker) {
    RetainedSet out;
    auto views = broker.Retained("#", absl::Seconds(5));
    EXPECT_TRUE(views.ok()) << views.status();
    if (!views.ok()) return out;
    for (const RetainedView& v : *views) out[v.topic] = {v.payload, v.qos};
    return out;
  }

  static void Stop(std::unique_ptr<Broker> broker) {
    broker->Close();
    broker->Wait();
  }

  testing::TempDir temp_{"shardmq-durable"};
  const std::string& dir_ = temp_.path();
};

TEST_F(DurabilityTest, RetainedMessagesComeBackWithAnotherShardCount) {
  RetainedSet expected;
  {
    std::unique_ptr<Broker> broker = Start(3, Options::Durability::Mode::kSync);
    ASSERT_NE(broker, nullptr);
    auto client = broker->NewInlineClient("embedder");
    ASSERT_TRUE(client.ok()) << client.status();
    for (int i = 0; i < 30; ++i) {
      const std::string topic = "e/" + std::to_string(i);
      ASSERT_TRUE((*client)->Publish(topic, "v" + std::to_string(i), i % 2, true).ok());
      expected[topic] = {"v" + std::to_string(i), i % 2};
    }
    for (int i = 0; i < 30; i += 7) {
      ASSERT_TRUE((*client)->Publish("e/" + std::to_string(i), "", 0, true).ok());
      expected.erase("e/" + std::to_string(i));
    }
    // Every shard applies the changes through its mailbox: wait for them.
    for (int i = 0; i < 500 && Retained(*broker) != expected; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_EQ(Retained(*broker), expected);
    client->reset();
    Stop(std::move(broker));
  }
  // Recovered before Start returns: no wait.
  std::unique_ptr<Broker> broker = Start(2, Options::Durability::Mode::kAsync);
  ASSERT_NE(broker, nullptr);
  EXPECT_EQ(Retained(*broker), expected);
  Stop(std::move(broker));

  broker = Start(1, Options::Durability::Mode::kNone);
  ASSERT_NE(broker, nullptr);
  EXPECT_TRUE(Retained(*broker).empty()) << "mode none reads nothing";
  Stop(std::move(broker));
}

}  // namespace
}  // namespace shardmq
