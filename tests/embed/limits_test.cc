// Limits that protect the broker from bad clients, through the embedding API:
// connections per source address, connect rate per address, publish rate and
// bytes per client (global and set by an authentication hook), and the
// connect timeout. Each test asserts on what clients see and on
// Broker::Stats(); the bad client is the only one affected.
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "shardmq/broker.h"
#include "test_client.h"
#include "three_shard_broker.h"

namespace shardmq {
namespace {

using mqtt::PacketType;
using mqtt::ProtocolVersion;
using testing::TestClient;
using Clock = std::chrono::steady_clock;

class LimitsTest : public testing::ThreeShardBroker {
 protected:
  // Waits (bounded) until `done` holds for the broker's counters.
  template <typename Pred>
  BrokerStats WaitForStats(Pred done) {
    BrokerStats stats = broker_->Stats();
    for (int i = 0; i < 300 && !done(stats); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      stats = broker_->Stats();
    }
    return stats;
  }
};

TEST_F(LimitsTest, ConnectionsPerAddressAreCappedForThatAddressOnly) {
  Options options;
  options.max_connections_per_address = 3;
  Start(options);
  std::vector<std::unique_ptr<TestClient>> first;
  for (int i = 0; i < 3; ++i) {
    first.push_back(TryConnect("a" + std::to_string(i), "127.0.0.2"));
    ASSERT_NE(first.back(), nullptr) << i;
  }
  // The fourth from that address is closed before it can say anything.
  auto fourth = std::make_unique<TestClient>(ProtocolVersion::kV5);
  ASSERT_TRUE(fourth->Open(port_, "127.0.0.2"));
  EXPECT_EQ(fourth->Connect("a3"), std::nullopt);
  EXPECT_TRUE(fourth->WaitClosed());
  EXPECT_EQ(broker_->Stats().refused_per_address, 1u);
  // Other addresses are not affected...
  auto other = TryConnect("b0", "127.0.0.3");
  ASSERT_NE(other, nullptr);
  // ...and the clients already in keep working.
  ASSERT_TRUE(first[0]->Subscribe("t", 1).has_value());
  ASSERT_TRUE(other->Publish("t", "hello", 1).has_value());
  auto got = first[0]->NextOf(PacketType::kPublish);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->payload, "hello");
  // A closed connection frees its place (once the broker has seen it close).
  first[2]->Disconnect();
  EXPECT_TRUE(first[2]->WaitClosed());
  WaitForStats([](const BrokerStats& s) { return s.connections_open == 3; });
  EXPECT_NE(TryConnect("a4", "127.0.0.2"), nullptr);
}

TEST_F(LimitsTest, ConnectRatePerAddressRefusesTheExcess) {
  Options options;
  options.max_connect_rate_per_address = 5;
  Start(options);
  const auto start = Clock::now();
  int admitted = 0;
  constexpr int kTries = 20;
  for (int i = 0; i < kTries; ++i) {
    // Closed straight away: the rate counts new connections, not open ones.
    if (TryConnect("r" + std::to_string(i), "127.0.0.4") != nullptr) ++admitted;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  // A burst of 5, then 5 a second: never more, however slow this machine.
  EXPECT_GE(admitted, 5);
  EXPECT_LE(admitted, 5 + static_cast<int>(5 * seconds) + 1);
  EXPECT_EQ(broker_->Stats().refused_connect_rate, static_cast<uint64_t>(kTries - admitted));
  // Another address has its own budget.
  EXPECT_NE(TryConnect("other", "127.0.0.5"), nullptr);
}

TEST_F(LimitsTest, PublishRateThrottlesThePublisherAndLosesNothing) {
  Options options;
  options.limits.max_publish_rate = 50;
  Start(options);
  auto subscriber = TryConnect("sub");
  ASSERT_NE(subscriber, nullptr);
  ASSERT_TRUE(subscriber->Subscribe("flood", 0).has_value());
  auto flooder = TryConnect("flooder");
  ASSERT_NE(flooder, nullptr);
  constexpr int kMessages = 150;
  const auto start = Clock::now();
  for (int i = 0; i < kMessages; ++i) flooder->Publish("flood", std::to_string(i), 0);
  for (int i = 0; i < kMessages; ++i) {
    auto got = subscriber->NextOf(PacketType::kPublish, 10000);
    ASSERT_TRUE(got.has_value()) << "message " << i;
    EXPECT_EQ(got->payload, std::to_string(i));
  }
  // 50 at once, then 50 a second: the 150th cannot be read before
  // 149 / 50 - 1 = 1.98 s. A lower bound the rate itself sets, not a speed
  // measurement.
  EXPECT_GE(std::chrono::duration<double>(Clock::now() - start).count(), 1.8);
  EXPECT_GE(broker_->Stats().publishers_throttled, 1u);
  // The throttled client is still connected and served.
  auto ack = flooder->Publish("flood", "qos1", 1);
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->type, PacketType::kPuback);
}

// A publisher held back for 10 s without a second's break is not slowing
// down: it is disconnected (0x96), and the broker and its other clients go on.
// (The disconnect comes while the throttle's backlog is being decoded; it once
// freed the session under the PUBLISH that was being handled.)
TEST_F(LimitsTest, APublisherThatNeverSlowsDownIsDisconnected) {
  Options options;
  options.limits.max_publish_rate = 10;
  Start(options);
  auto subscriber = TryConnect("watcher");
  ASSERT_NE(subscriber, nullptr);
  ASSERT_TRUE(subscriber->Subscribe("calm", 1).has_value());
  auto flooder = TryConnect("relentless");
  ASSERT_NE(flooder, nullptr);
  // 25 a second against a limit of 10, for longer than the 10 s allowed.
  const auto start = Clock::now();
  for (int i = 0; i < 320 && Clock::now() - start < std::chrono::milliseconds(12500); ++i) {
    flooder->Publish("flood", std::to_string(i), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
  }
  auto disconnect = flooder->NextOf(PacketType::kDisconnect, 5000);
  ASSERT_TRUE(disconnect.has_value());
  EXPECT_EQ(disconnect->code, 0x96);  // message rate too high
  EXPECT_TRUE(flooder->WaitClosed());
  EXPECT_GE(WaitForStats([](const BrokerStats& s) {
              return s.publishers_disconnected >= 1;
            }).publishers_disconnected,
            1u);
  auto calm = TryConnect("calm-publisher");
  ASSERT_NE(calm, nullptr);
  ASSERT_TRUE(calm->Publish("calm", "still here", 1).has_value());
  auto got = subscriber->NextOf(PacketType::kPublish);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->payload, "still here");
}

TEST_F(LimitsTest, PublishBytesRateCountsTopicAndPayload) {
  Options options;
  options.limits.max_publish_bytes_rate = 20000;
  Start(options);
  auto subscriber = TryConnect("sub");
  ASSERT_NE(subscriber, nullptr);
  ASSERT_TRUE(subscriber->Subscribe("big", 0).has_value());
  auto publisher = TryConnect("pub", nullptr, ProtocolVersion::kV311);
  ASSERT_NE(publisher, nullptr);
  const std::string payload(1997, 'x');  // + "big" = 2,000 bytes
  const auto start = Clock::now();
  for (int i = 0; i < 40; ++i) {
    auto ack = publisher->Publish("big", payload, 1, false, static_cast<uint16_t>(i + 1));
    ASSERT_TRUE(ack.has_value()) << i;
  }
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(subscriber->NextOf(PacketType::kPublish, 10000)) << i;
  // 2,000 bytes each at 20,000 a second after a 20,000 burst: the 40th can
  // be read no sooner than 39 x 0.1 s - 1 s = 2.9 s after the first.
  EXPECT_GE(std::chrono::duration<double>(Clock::now() - start).count(), 2.5);
  EXPECT_GE(broker_->Stats().publishers_throttled, 1u);
}

// The hook gives one user a tight limit; everyone else has none.
class PerUserRate : public Hooks {
 public:
  AuthDecision OnAuthenticate(const ConnectRequest& request) override {
    if (request.client.username == std::optional<std::string_view>("slow")) {
      request.limits->publish_rate = 20;
    }
    return AuthDecision::NoOpinion();
  }
};

TEST_F(LimitsTest, AnAuthenticationHookSetsOneClientsRate) {
  Options options;
  options.hooks.push_back(std::make_shared<PerUserRate>());
  Start(options);
  auto fast = std::make_unique<TestClient>(ProtocolVersion::kV5);
  ASSERT_TRUE(fast->Open(port_));
  ASSERT_EQ(fast->Connect("fast", "quick"), 0);
  for (int i = 0; i < 500; ++i) fast->Publish("t", "x", 0);
  ASSERT_TRUE(fast->Publish("t", "end", 1).has_value());  // all 500 were read
  EXPECT_EQ(broker_->Stats().publishers_throttled, 0u);

  auto slow = std::make_unique<TestClient>(ProtocolVersion::kV5);
  ASSERT_TRUE(slow->Open(port_));
  ASSERT_EQ(slow->Connect("slow", "slow"), 0);
  for (int i = 0; i < 60; ++i) slow->Publish("t", "x", 0);
  ASSERT_TRUE(slow->Publish("t", "end", 1, false, 7).has_value());
  EXPECT_GE(broker_->Stats().publishers_throttled, 1u);
}

TEST_F(LimitsTest, SubscriptionsBeyondTheQuotaAreRefusedAndCounted) {
  Options options;
  options.limits.max_subscriptions_per_client = 2;
  Start(options);
  auto client = TryConnect("subs");
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->Subscribe("a", 0, 1)->codes, std::vector<uint8_t>{0});
  EXPECT_EQ(client->Subscribe("b", 0, 2)->codes, std::vector<uint8_t>{0});
  EXPECT_EQ(client->Subscribe("c", 0, 3)->codes, std::vector<uint8_t>{0x97});  // quota exceeded
  // Subscribing again to a filter it holds is a replacement, not one more.
  EXPECT_EQ(client->Subscribe("a", 1, 4)->codes, std::vector<uint8_t>{1});
  EXPECT_EQ(broker_->Stats().subscriptions_refused_quota, 1u);
}

TEST_F(LimitsTest, SilentSocketsAreClosedAfterTheConnectTimeoutAndCounted) {
  Options options;
  options.limits.connect_timeout_ms = 300;
  Start(options);
  TestClient silent(ProtocolVersion::kV311);
  ASSERT_TRUE(silent.Open(port_));
  EXPECT_TRUE(silent.WaitClosed(5000));
  BrokerStats stats = WaitForStats([](const BrokerStats& s) { return s.connections_open == 0; });
  EXPECT_EQ(stats.connect_timeouts, 1u);
  EXPECT_EQ(stats.connections_open, 0u);
}

}  // namespace
}  // namespace shardmq
