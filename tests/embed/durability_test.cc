// Options::durability through the embedding API: retained messages published
// by an inline client come back in a new Broker on the same data_dir, with a
// different shard count, before it serves; mode kNone stores nothing. And the
// commits of a persistent publisher's QoS 2 messages (durable_acks.cc), and
// a broker whose log failed for good.

#include <signal.h>
#include <sys/resource.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "mqtt/encoder.h"
#include "placement.h"
#include "shardmq/broker.h"
#include "shardmq/inline_client.h"
#include "temp_dir.h"
#include "test_client.h"

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

// A persistent publisher's QoS 2 messages are committed in the order they
// came. In async mode PUBREC goes out at once, so a PUBREL may come before
// its message's commit, which then ends early; the later messages' commits
// go on. Here the first message waits for a subscriber's shard while the
// second (nobody subscribes) is ready at once, and the PUBREL for the first
// comes before the other shard answers. (DrainCommits once kept the
// publisher's id as a reference into the first commit, which it had just
// finished: the second commit read freed memory.)
TEST_F(DurabilityTest, AReleaseBeforeItsCommitLeavesTheNextCommitIntact) {
  std::unique_ptr<Broker> broker = Start(3, Options::Durability::Mode::kAsync);
  ASSERT_NE(broker, nullptr);
  const uint16_t port = testing::BoundPort(*broker);
  // Longer than std::string's inline buffer: a freed id is freed heap.
  const std::string publisher_id = "publisher-with-a-long-client-id";
  const std::string subscriber_id = testing::IdHomedAwayFrom("subscriber-", publisher_id, 3);
  testing::TestClient subscriber(mqtt::ProtocolVersion::kV5);
  ASSERT_TRUE(subscriber.Open(port));
  ASSERT_EQ(subscriber.Connect(subscriber_id), std::optional<uint8_t>(0));
  ASSERT_TRUE(subscriber.Subscribe("far/away", 2).has_value());
  testing::TestClient publisher(mqtt::ProtocolVersion::kV5);
  ASSERT_TRUE(publisher.Open(port));
  ASSERT_EQ(publisher.Connect(publisher_id, std::nullopt, std::nullopt, /*clean_start=*/true,
                              std::nullopt, /*session_expiry=*/300),
            std::optional<uint8_t>(0));
  // The session's records are written: the publisher's log has nothing
  // pending, so what the two messages wait for on its own shard is there.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));

  // One write, so one read: both PUBLISHes and the PUBREL for the first are
  // handled before the subscriber's shard can answer.
  std::vector<uint8_t> bytes;
  auto append = [&bytes](const mqtt::Packet& packet) {
    const size_t at = bytes.size();
    bytes.resize(at + mqtt::EncodedSize(packet, mqtt::ProtocolVersion::kV5));
    mqtt::Encode(packet, mqtt::ProtocolVersion::kV5, absl::MakeSpan(bytes).subspan(at));
  };
  const std::string payload = "once";
  auto publish = [&](std::string_view topic, uint16_t id) {
    mqtt::Publish p;
    p.topic = topic;
    p.payload =
        absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
    p.qos = 2;
    p.packet_id = id;
    return p;
  };
  append(publish("far/away", 1));
  append(publish("nobody/listens", 2));
  mqtt::PubAck pubrel;
  pubrel.type = mqtt::PacketType::kPubrel;
  pubrel.packet_id = 1;
  append(pubrel);
  publisher.SendRaw(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));

  auto first = publisher.NextOf(mqtt::PacketType::kPubrec);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->packet_id, 1);
  auto second = publisher.NextOf(mqtt::PacketType::kPubrec);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->packet_id, 2);
  auto complete = publisher.NextOf(mqtt::PacketType::kPubcomp);
  ASSERT_TRUE(complete.has_value());
  EXPECT_EQ(complete->packet_id, 1);
  auto got = subscriber.NextOf(mqtt::PacketType::kPublish);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->payload, "once");
  // The other shard has answered by now; the broker goes on.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  pubrel.packet_id = 2;
  publisher.Send(pubrel);
  complete = publisher.NextOf(mqtt::PacketType::kPubcomp);
  ASSERT_TRUE(complete.has_value());
  EXPECT_EQ(complete->packet_id, 2);
  EXPECT_EQ(complete->code, 0);  // its id was still known
  Stop(std::move(broker));
}

// A log that failed for good (here: a write the file size limit refuses)
// answers every wait at once with its error, so a QoS 2 copy held for the
// disk under `sync` goes out at once, and what waited behind it follows.
// Retained messages that a subscription's queue could not take yet then
// follow as the subscriber acknowledges. (Sending a copy pumped the queue,
// which fed the retained backlog again from inside its own feed; the
// innermost feed emptied and erased the backlog the outer ones still read.)
TEST_F(DurabilityTest, RetainedBacklogDrainsAfterTheLogFailed) {
  Options options;
  options.shards = 1;
  options.listeners = {"127.0.0.1:0"};
  options.durability.data_dir = dir_;
  options.durability.mode = Options::Durability::Mode::kSync;
  // One in flight, one queued: the rest of the retained set waits aside.
  options.limits.max_inflight = 1;
  options.limits.max_queued_messages = 2;
  auto created = Broker::Create(options);
  ASSERT_TRUE(created.ok()) << created.status();
  std::unique_ptr<Broker> broker = *std::move(created);
  ASSERT_TRUE(broker->Start().ok());
  const uint16_t port = testing::BoundPort(*broker);

  constexpr int kRetained = 6;
  testing::TestClient publisher(mqtt::ProtocolVersion::kV5);
  ASSERT_TRUE(publisher.Open(port));
  ASSERT_EQ(publisher.Connect("retainer"), std::optional<uint8_t>(0));
  for (int i = 0; i < kRetained; ++i) {
    ASSERT_TRUE(publisher
                    .Publish("kept/" + std::to_string(i), "v" + std::to_string(i), 2,
                             /*retain=*/true, static_cast<uint16_t>(i + 1))
                    .has_value());
  }
  testing::TestClient subscriber(mqtt::ProtocolVersion::kV5);
  ASSERT_TRUE(subscriber.Open(port));
  ASSERT_EQ(subscriber.Connect("backlogged", std::nullopt, std::nullopt, /*clean_start=*/true,
                               std::nullopt, /*session_expiry=*/300),
            std::optional<uint8_t>(0));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));

  // Every log write from here fails (EFBIG): the log stops for good.
  rlimit old_limit{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  auto old_handler = signal(SIGXFSZ, SIG_IGN);
  rlimit tiny = old_limit;
  tiny.rlim_cur = 1;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &tiny), 0);
  auto suback = subscriber.Subscribe("kept/#", 2);
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old_limit), 0);
  signal(SIGXFSZ, old_handler);
  ASSERT_TRUE(suback.has_value());

  // A wider window: acknowledging the first message now lets the rest go.
  Limits wider = broker->limits();
  wider.max_inflight = 100;
  ASSERT_TRUE(broker->SetLimits(wider).ok());

  std::set<std::string> got;
  auto first = subscriber.NextOf(mqtt::PacketType::kPublish);
  ASSERT_TRUE(first.has_value());
  got.insert(first->payload);
  mqtt::PubAck ack;
  ack.type = mqtt::PacketType::kPubrec;
  ack.packet_id = first->packet_id;
  subscriber.Send(ack);
  ASSERT_TRUE(subscriber.NextOf(mqtt::PacketType::kPubrel).has_value());
  ack.type = mqtt::PacketType::kPubcomp;
  subscriber.Send(ack);
  while (got.size() < kRetained) {
    auto next = subscriber.NextOf(mqtt::PacketType::kPublish);
    ASSERT_TRUE(next.has_value()) << got.size() << " of " << kRetained << " retained messages";
    EXPECT_TRUE(next->retain);
    got.insert(next->payload);
  }
  broker->Close();
  broker->Wait();
}

}  // namespace
}  // namespace shardmq
