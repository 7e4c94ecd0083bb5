// Limits changed while the broker runs (Broker::SetLimits,
// Broker::SetConnectionLimits), as clients see them: a new bound applies to
// the next packet or connection, and a connected MQTT 5 client is never held
// to a value its CONNACK did not tell it. The broker runs several shards,
// and one test changes limits under traffic: it is in the `shard` suite too,
// which runs under ThreadSanitizer.
#include <atomic>
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

class RuntimeLimitsTest : public testing::ThreeShardBroker {
 protected:
  // The running limits with one change.
  template <typename F>
  absl::Status Change(F change) {
    Limits limits = broker_->limits();
    change(limits);
    return broker_->SetLimits(limits);
  }
};

TEST_F(RuntimeLimitsTest, ALoweredSubscriptionQuotaRefusesTheNextSubscribe) {
  Start(Options{});
  auto client = TryConnect("subs");
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->Subscribe("a", 0, 1)->codes, std::vector<uint8_t>{0});
  EXPECT_EQ(client->Subscribe("b", 0, 2)->codes, std::vector<uint8_t>{0});
  ASSERT_TRUE(Change([](Limits& l) { l.max_subscriptions_per_client = 2; }).ok());
  EXPECT_EQ(broker_->limits().max_subscriptions_per_client, 2u);
  // Already connected, already at the new quota: one more is refused.
  EXPECT_EQ(client->Subscribe("c", 0, 3)->codes, std::vector<uint8_t>{0x97});
  EXPECT_EQ(broker_->Stats().subscriptions_refused_quota, 1u);
  // Raised again: the same SUBSCRIBE is granted.
  ASSERT_TRUE(Change([](Limits& l) { l.max_subscriptions_per_client = 3; }).ok());
  EXPECT_EQ(client->Subscribe("c", 0, 4)->codes, std::vector<uint8_t>{0});
}

TEST_F(RuntimeLimitsTest, ALoweredPublishRateThrottlesAConnectedClient) {
  Start(Options{});
  auto subscriber = TryConnect("sub");
  ASSERT_NE(subscriber, nullptr);
  ASSERT_TRUE(subscriber->Subscribe("flood", 0).has_value());
  auto publisher = TryConnect("pub");
  ASSERT_NE(publisher, nullptr);
  ASSERT_TRUE(Change([](Limits& l) { l.max_publish_rate = 50; }).ok());
  constexpr int kMessages = 150;
  const auto start = Clock::now();
  for (int i = 0; i < kMessages; ++i) publisher->Publish("flood", std::to_string(i), 0);
  for (int i = 0; i < kMessages; ++i) {
    auto got = subscriber->NextOf(PacketType::kPublish, 10000);
    ASSERT_TRUE(got.has_value()) << "message " << i;
    EXPECT_EQ(got->payload, std::to_string(i));
  }
  // 50 at once, then 50 a second: the 150th no sooner than 1.98 s.
  EXPECT_GE(std::chrono::duration<double>(Clock::now() - start).count(), 1.8);
  EXPECT_GE(broker_->Stats().publishers_throttled, 1u);

  // Lifted: the same client publishes a burst unthrottled.
  const uint64_t throttled = broker_->Stats().publishers_throttled;
  ASSERT_TRUE(Change([](Limits& l) { l.max_publish_rate = 0; }).ok());
  for (int i = 0; i < 300; ++i) publisher->Publish("flood", "x", 0);
  ASSERT_TRUE(publisher->Publish("flood", "end", 1).has_value());
  EXPECT_EQ(broker_->Stats().publishers_throttled, throttled);
}

// One user gets a tight rate from the hook; the global rate is raised later.
class SlowUser : public Hooks {
 public:
  AuthDecision OnAuthenticate(const ConnectRequest& request) override {
    if (request.client.username == std::optional<std::string_view>("slow")) {
      request.limits->publish_rate = 20;
    }
    return AuthDecision::NoOpinion();
  }
};

TEST_F(RuntimeLimitsTest, AHooksOwnRateStaysTheCeilingWhenTheGlobalOneIsRaised) {
  Options options;
  options.limits.max_publish_rate = 100;
  options.hooks.push_back(std::make_shared<SlowUser>());
  Start(options);
  auto slow = std::make_unique<TestClient>(ProtocolVersion::kV5);
  ASSERT_TRUE(slow->Open(port_));
  ASSERT_EQ(slow->Connect("slow", "slow"), 0);
  ASSERT_TRUE(Change([](Limits& l) { l.max_publish_rate = 100000; }).ok());
  // 20 at once, then 20 a second: the PUBACK after 50 more cannot come
  // before 1.5 s; at the new global rate it would come at once.
  const auto start = Clock::now();
  for (int i = 0; i < 50; ++i) slow->Publish("t", "x", 0);
  ASSERT_TRUE(slow->Publish("t", "end", 1, false, 7).has_value());
  EXPECT_GE(std::chrono::duration<double>(Clock::now() - start).count(), 1.3);
  EXPECT_GE(broker_->Stats().publishers_throttled, 1u);
}

TEST_F(RuntimeLimitsTest, ConnectionLimitsApplyToTheNextConnections) {
  Options options;
  options.max_connections = 2;
  options.max_connections_per_address = 5;
  Start(options);
  auto a = TryConnect("a", "127.0.0.2");
  auto b = TryConnect("b", "127.0.0.2");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(TryConnect("c", "127.0.0.3"), nullptr);  // over max_connections
  EXPECT_EQ(broker_->Stats().refused_max_connections, 1u);

  ConnectionLimits limits = broker_->connection_limits();
  EXPECT_EQ(limits.max_connections, 2u);
  limits.max_connections = 10;
  limits.max_connections_per_address = 3;
  ASSERT_TRUE(broker_->SetConnectionLimits(limits).ok());
  auto c = TryConnect("c", "127.0.0.2");  // the third from .2: within 3
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(TryConnect("d", "127.0.0.2"), nullptr);  // a fourth is not
  EXPECT_EQ(broker_->Stats().refused_per_address, 1u);
  EXPECT_NE(TryConnect("e", "127.0.0.3"), nullptr);  // another address is
  // Nobody already connected was closed.
  EXPECT_EQ(a->Subscribe("t", 0)->codes, std::vector<uint8_t>{0});
}

TEST_F(RuntimeLimitsTest, ALoweredMaximumPacketSizeBindsOnlyNewConnections) {
  Start(Options{});
  auto told_old = TryConnect("old");
  ASSERT_NE(told_old, nullptr);
  EXPECT_EQ(told_old->connack().maximum_packet_size, 1u << 20);
  ASSERT_TRUE(Change([](Limits& l) { l.max_packet_size = 1024; }).ok());
  const std::string payload(4000, 'p');  // between the new and the old maximum

  // Told 1 MiB in its CONNACK: still allowed that.
  auto ack = told_old->Publish("t", payload, 1);
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->type, PacketType::kPuback);

  // Told 1024 in its CONNACK, and held to it: DISCONNECT 0x95.
  auto told_new = TryConnect("new");
  ASSERT_NE(told_new, nullptr);
  EXPECT_EQ(told_new->connack().maximum_packet_size, 1024u);
  told_new->Publish("t", payload, 0);
  auto disconnect = told_new->NextOf(PacketType::kDisconnect);
  ASSERT_TRUE(disconnect.has_value());
  EXPECT_EQ(disconnect->code, 0x95);
  EXPECT_TRUE(told_new->WaitClosed());
}

TEST_F(RuntimeLimitsTest, ALoweredMaximumQosBindsOnlyNewConnections) {
  Start(Options{});
  auto told_old = TryConnect("old");
  ASSERT_NE(told_old, nullptr);
  ASSERT_TRUE(Change([](Limits& l) { l.max_qos = 0; }).ok());
  auto ack = told_old->Publish("t", "x", 1);
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->type, PacketType::kPuback);

  auto told_new = TryConnect("new");
  ASSERT_NE(told_new, nullptr);
  EXPECT_EQ(told_new->connack().maximum_qos, std::optional<uint8_t>(0));
  told_new->Publish("t", "x", 1);
  auto disconnect = told_new->NextOf(PacketType::kDisconnect);
  ASSERT_TRUE(disconnect.has_value());
  EXPECT_EQ(disconnect->code, 0x9B);  // QoS not supported
}

TEST_F(RuntimeLimitsTest, InvalidLimitsAreRefusedAndChangeNothing) {
  Options options;
  options.limits.max_subscriptions_per_client = 7;
  Start(options);
  absl::Status status = Change([](Limits& l) {
    l.max_subscriptions_per_client = 1;
    l.max_qos = 3;
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("max_qos=3"), std::string_view::npos) << status;
  EXPECT_EQ(broker_->limits().max_subscriptions_per_client, 7u);
  EXPECT_EQ(Change([](Limits& l) { l.receive_maximum = 0; }).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(broker_->SetConnectionLimits({0, 0, 0}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(broker_->connection_limits().max_connections, 1'000'000u);
  // Nothing changed for a client either.
  auto client = TryConnect("c");
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->Subscribe("a", 0, 1)->codes, std::vector<uint8_t>{0});
  EXPECT_EQ(client->Subscribe("b", 0, 2)->codes, std::vector<uint8_t>{0});
}

// A hook (on a shard thread) that tries to change the limits. Atomics: the
// test thread learns of the call through a socket, which ThreadSanitizer
// does not see as ordering.
class ChangesLimitsInAHook : public Hooks {
 public:
  void OnSessionEstablished(const ClientInfo&) override {
    Limits limits;
    limits.max_subscriptions_per_client = 1;
    code = static_cast<int>(broker.load()->SetLimits(limits).code());
  }
  std::atomic<Broker*> broker{nullptr};
  std::atomic<int> code{-1};
};

TEST_F(RuntimeLimitsTest, AHookCannotChangeLimitsAndNothingChanges) {
  auto hook = std::make_shared<ChangesLimitsInAHook>();
  Options options;
  options.hooks.push_back(hook);
  Start(options);
  hook->broker = broker_.get();
  auto client = TryConnect("c");
  ASSERT_NE(client, nullptr);
  // Refused: it would wait on its own shard.
  for (int i = 0; i < 300 && hook->code == -1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(hook->code, static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(broker_->limits().max_subscriptions_per_client, 10000u);
  EXPECT_EQ(client->Subscribe("a", 0, 1)->codes, std::vector<uint8_t>{0});
  EXPECT_EQ(client->Subscribe("b", 0, 2)->codes, std::vector<uint8_t>{0});
}

TEST_F(RuntimeLimitsTest, LimitsChangeSafelyUnderTraffic) {
  // Shards read their limits on every packet while another thread keeps
  // replacing them (ThreadSanitizer watches in the `shard` suite).
  Start(Options{});
  std::atomic<bool> done{false};
  std::thread changer([&] {
    for (uint32_t i = 0; !done.load(); ++i) {
      Limits limits;
      limits.max_subscriptions_per_client = 1000 + i % 7;
      limits.max_inflight = static_cast<uint16_t>(8 + i % 5);
      limits.denied_filters = {"denied/" + std::to_string(i % 3)};
      limits.max_publish_rate = i % 2 == 0 ? 0 : 1'000'000;
      EXPECT_TRUE(broker_->SetLimits(limits).ok());
      ConnectionLimits connections;
      connections.max_connections_per_address = 1000 + i % 3;
      connections.max_connect_rate_per_address = i % 2 == 0 ? 0 : 100000;
      EXPECT_TRUE(broker_->SetConnectionLimits(connections).ok());
    }
  });
  auto subscriber = TryConnect("sub");
  ASSERT_NE(subscriber, nullptr);
  // QoS 0 deliveries: this client acknowledges nothing.
  ASSERT_EQ(subscriber->Subscribe("load/#", 0)->codes, std::vector<uint8_t>{0});
  for (int round = 0; round < 20; ++round) {
    auto publisher = TryConnect("pub" + std::to_string(round));
    ASSERT_NE(publisher, nullptr) << round;
    for (int i = 0; i < 10; ++i) {
      ASSERT_TRUE(publisher->Publish("load/" + std::to_string(i), "x", 1).has_value());
    }
  }
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(subscriber->NextOf(PacketType::kPublish)) << i;
  done = true;
  changer.join();
}

}  // namespace
}  // namespace shardmq
