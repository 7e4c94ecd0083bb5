// Back-pressure across shards through the public embedding API: what a
// publisher had already sent when a slow subscriber's pause reached it must
// still be delivered, not dropped at the subscriber's queue cap.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include "gtest/gtest.h"
#include "placement.h"
#include "shardmq/broker.h"
#include "test_client.h"

namespace shardmq {
namespace {

using mqtt::PacketType;
using mqtt::ProtocolVersion;
using testing::Received;
using testing::TestClient;

// Holds the subscriber's shard inside its first delivery check until
// released, as a shard starved of CPU would be, and counts drops.
class StallFirstDelivery : public Hooks {
 public:
  uint32_t Events() const override { return kHookDeliver | kHookDropped; }

  Decision OnDeliverCheck(const ClientInfo&, const MessageView&) override {
    std::unique_lock lock(mu_);
    if (!stalled_) {
      stalled_ = true;
      cv_.notify_all();
      cv_.wait_for(lock, std::chrono::seconds(30), [&] { return released_; });
    }
    return Decision::NoOpinion();
  }
  void OnMessageDropped(std::string_view, const MessageView&, DropReason) override { ++dropped; }

  bool WaitStalled() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return stalled_; });
  }
  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

  std::atomic<int> dropped{0};

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stalled_ = false;
  bool released_ = false;
};

// A subscriber whose shard stalls while a publisher on another shard sends
// far more than the subscriber's queue cap (8 x --max-queued-messages): all
// of it is in the mailbox before the subscriber's shard can ask for a pause.
// Before the in-flight allowance, everything past the cap was dropped
// (QoS 1 the publisher had been acknowledged for).
TEST(Backpressure, MessagesInFlightBeforeThePauseAreDeliveredNotDropped) {
  constexpr int kShards = 2;
  constexpr int kMessages = 3000;  // > 128 in flight + 8 x 100 queued
  auto hooks = std::make_shared<StallFirstDelivery>();
  Options options;
  options.shards = kShards;
  options.listeners = {"127.0.0.1:0"};
  options.limits.max_queued_messages = 100;
  options.hooks = {hooks};
  auto created = Broker::Create(options);
  ASSERT_TRUE(created.ok()) << created.status();
  std::unique_ptr<Broker> broker = *std::move(created);
  ASSERT_TRUE(broker->Start().ok());
  const uint16_t port = testing::BoundPort(*broker);

  const std::string publisher_id = "flood-publisher";
  const std::string subscriber_id =
      testing::IdHomedAwayFrom("slow-subscriber-", publisher_id, kShards);
  TestClient subscriber(ProtocolVersion::kV5);
  ASSERT_TRUE(subscriber.Open(port));
  ASSERT_EQ(subscriber.Connect(subscriber_id), std::optional<uint8_t>(0));
  ASSERT_TRUE(subscriber.Subscribe("flood", 1).has_value());
  TestClient publisher(ProtocolVersion::kV5);
  ASSERT_TRUE(publisher.Open(port));
  ASSERT_EQ(publisher.Connect(publisher_id), std::optional<uint8_t>(0));

  // The first message stalls the subscriber's shard; the rest are routed
  // and acknowledged by the publisher's shard meanwhile.
  ASSERT_EQ(publisher.Publish("flood", "0", 1, false, 1)->code, 0);
  ASSERT_TRUE(hooks->WaitStalled());
  for (int n = 1; n < kMessages; ++n) {
    mqtt::Publish publish;
    const std::string payload = std::to_string(n);
    publish.topic = "flood";
    publish.payload =
        absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
    publish.qos = 1;
    publish.packet_id = static_cast<uint16_t>(n % 60000 + 1);
    publisher.Send(publish);
  }
  int acked = 1;
  while (acked < kMessages) {
    std::optional<Received> ack = publisher.NextOf(PacketType::kPuback, 10000);
    ASSERT_TRUE(ack.has_value()) << "PUBACKs: " << acked;
    ASSERT_EQ(ack->code, 0);
    ++acked;
  }
  hooks->Release();

  // Every message arrives, once and in order, as the subscriber acknowledges.
  for (int n = 0; n < kMessages; ++n) {
    std::optional<Received> message = subscriber.NextOf(PacketType::kPublish, 10000);
    ASSERT_TRUE(message.has_value())
        << "got " << n << " of " << kMessages << ", " << hooks->dropped.load() << " dropped";
    ASSERT_EQ(message->payload, std::to_string(n));
    mqtt::PubAck ack;
    ack.packet_id = message->packet_id;
    subscriber.Send(ack);
  }
  EXPECT_EQ(hooks->dropped.load(), 0);
  broker->Close();
  broker->Wait();
}

}  // namespace
}  // namespace shardmq
