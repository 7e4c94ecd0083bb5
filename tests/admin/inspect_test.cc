// Broker's inspection calls (shardmq/broker_view.h) and StatsPerShard with
// inline clients on a real broker: what they report follows what happened.
#include <chrono>
#include <thread>

#include "gtest/gtest.h"
#include "shardmq/broker.h"

namespace shardmq {
namespace {

class InspectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Options options;
    options.shards = 2;
    options.listeners = {"127.0.0.1:0"};
    auto broker = Broker::Create(options);
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = *std::move(broker);
    ASSERT_TRUE(broker_->Start().ok());
  }
  void TearDown() override {
    clients_.clear();
    broker_->Close();
    broker_->Wait();
  }
  InlineClient& NewClient(const std::string& id) {
    auto client = broker_->NewInlineClient(id);
    EXPECT_TRUE(client.ok()) << client.status();
    clients_.push_back(*std::move(client));
    return *clients_.back();
  }
  std::unique_ptr<Broker> broker_;
  std::vector<std::unique_ptr<InlineClient>> clients_;
};

TEST_F(InspectTest, GaugesClientsAndRetained) {
  InlineClient& sub = NewClient("sub");
  ASSERT_TRUE(sub.Subscribe("t/#", 1, [](const InlineMessage&) {}).ok());
  InlineClient& pub = NewClient("pub");
  ASSERT_TRUE(pub.Publish("t/1", "hello", 1, /*retain=*/true).ok());
  ASSERT_TRUE(pub.Publish("t/2", "x", 0).ok());

  // Publishes are asynchronous: wait until both were routed.
  for (int i = 0; i < 200 && broker_->Stats().messages_sent < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const BrokerStats stats = broker_->Stats();
  EXPECT_EQ(stats.messages_received, 2u);
  EXPECT_EQ(stats.messages_received_qos[1], 1u);
  EXPECT_EQ(stats.messages_sent_qos[0], 1u);
  EXPECT_EQ(stats.publish_bytes_received_qos[1], 3u + 5u);
  std::vector<BrokerStats> per_shard = broker_->StatsPerShard();
  ASSERT_EQ(per_shard.size(), 2u);
  EXPECT_EQ(per_shard[0].messages_received + per_shard[1].messages_received, 2u);
  EXPECT_GT(per_shard[0].loop_turns, 0u);

  auto gauges = broker_->Gauges(absl::Seconds(5));
  ASSERT_TRUE(gauges.ok()) << gauges.status();
  ASSERT_EQ(gauges->size(), 2u);
  uint64_t subscriptions = 0, sessions = 0;
  for (const ShardGauges& g : *gauges) {
    subscriptions += g.subscriptions;
    sessions += g.sessions;
    EXPECT_EQ(g.retained, 1u);  // every shard holds the retained set
  }
  EXPECT_EQ(subscriptions, 1u);
  EXPECT_EQ(sessions, 0u);  // inline clients are not counted as clients

  auto clients = broker_->Clients(absl::Seconds(5));
  ASSERT_TRUE(clients.ok());
  EXPECT_EQ(clients->size(), 2u);
  auto one = broker_->Clients(absl::Seconds(5), "sub");
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_TRUE(one->front().inline_client);
  ASSERT_EQ(one->front().subscriptions.size(), 1u);
  EXPECT_EQ(one->front().subscriptions[0].first, "t/#");
  EXPECT_EQ(broker_->Clients(absl::Seconds(5), "nobody").status().code(),
            absl::StatusCode::kNotFound);

  auto retained = broker_->Retained("#", absl::Seconds(5));
  ASSERT_TRUE(retained.ok());
  ASSERT_EQ(retained->size(), 1u);
  EXPECT_EQ(retained->front().topic, "t/1");
  EXPECT_EQ(retained->front().payload, "hello");
  EXPECT_EQ(retained->front().qos, 1);

  EXPECT_EQ(broker_->DisconnectClient("nobody", false, absl::Seconds(5)).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(broker_->DisconnectClient("sub", true, absl::Seconds(5)).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(InspectTest, UnavailableOnceStopped) {
  broker_->Close();
  broker_->Wait();
  EXPECT_EQ(broker_->Gauges(absl::Seconds(1)).status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace shardmq
