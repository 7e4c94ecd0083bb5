#include "broker/publish_batch.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "broker/message.h"
#include "mqtt/properties.h"

namespace shardmq::broker {
namespace {

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

struct Seen {
  std::string topic, payload, publisher;
  int qos;
  uint64_t hash;
};

std::vector<Seen> Contents(const PublishBatch& batch) {
  std::vector<Seen> out;
  batch.ForEach([&](const Message::Fields& f, uint64_t hash) {
    out.push_back({std::string(f.topic),
                   std::string(reinterpret_cast<const char*>(f.payload.data()), f.payload.size()),
                   std::string(f.publisher), f.qos, hash});
    EXPECT_FALSE(f.retain);
    EXPECT_EQ(f.properties, nullptr);
    EXPECT_EQ(f.origin, 0u);
  });
  return out;
}

class Batch {
 public:
  Batch() : batch_(PublishBatch::Create()) {}
  ~Batch() { PublishBatch::Destroy(batch_); }
  PublishBatch* operator->() { return batch_; }
  const PublishBatch& operator*() const { return *batch_; }

 private:
  PublishBatch* batch_;
};

TEST(PublishBatchTest, GivesBackEveryMessageInOrderWithItsHash) {
  Batch batch;
  const std::string empty, odd(7, 'o'), big(500, 'b');
  ASSERT_TRUE(batch->Append({"a", Bytes(empty), 0, false, "pub-1"}, 11));
  ASSERT_TRUE(batch->Append({"some/longer/topic", Bytes(odd), 1, false, ""}, 22));
  ASSERT_TRUE(batch->Append({"t", Bytes(big), 2, false, "p"}, 33));
  EXPECT_EQ(batch->count(), 3u);
  const std::vector<Seen> seen = Contents(*batch);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].topic, "a");
  EXPECT_EQ(seen[0].payload, "");
  EXPECT_EQ(seen[0].publisher, "pub-1");
  EXPECT_EQ(seen[0].qos, 0);
  EXPECT_EQ(seen[0].hash, 11u);
  EXPECT_EQ(seen[1].topic, "some/longer/topic");
  EXPECT_EQ(seen[1].payload, odd);
  EXPECT_EQ(seen[1].publisher, "");
  EXPECT_EQ(seen[1].qos, 1);
  EXPECT_EQ(seen[2].payload, big);
  EXPECT_EQ(seen[2].qos, 2);
  EXPECT_EQ(seen[2].hash, 33u);
}

TEST(PublishBatchTest, FullAtMaxMessagesOrBytesAndEmptyAgainAfterClear) {
  Batch batch;
  const std::string small(10, 's');
  for (uint32_t i = 0; i < PublishBatch::kMaxMessages; ++i) {
    ASSERT_TRUE(batch->Append({"t", Bytes(small), 0, false, "p"}, i)) << i;
  }
  EXPECT_FALSE(batch->Append({"t", Bytes(small), 0, false, "p"}, 99));
  EXPECT_EQ(batch->count(), PublishBatch::kMaxMessages);
  batch->Clear();
  EXPECT_EQ(batch->count(), 0u);
  EXPECT_TRUE(Contents(*batch).empty());
  // By bytes: the largest messages fill it before the count does, and a
  // refused message leaves what is there untouched.
  const std::string large(PublishBatch::kMaxMessageBytes - 2, 'L');
  uint32_t taken = 0;
  while (batch->Append({"t", Bytes(large), 0, false, "p"}, taken)) ++taken;
  EXPECT_GT(taken, 0u);
  EXPECT_LT(taken, PublishBatch::kMaxMessages);
  const std::vector<Seen> seen = Contents(*batch);
  ASSERT_EQ(seen.size(), taken);
  for (uint32_t i = 0; i < taken; ++i) {
    EXPECT_EQ(seen[i].payload, large);
    EXPECT_EQ(seen[i].hash, i);
  }
  // An empty batch always has room for one message that Fits.
  batch->Clear();
  EXPECT_TRUE(batch->Append({"t", Bytes(large), 0, false, "p"}, 0));
}

TEST(PublishBatchTest, OnlyPlainSmallQos0MessagesFit) {
  const std::string payload(100, 'x'), too_big(PublishBatch::kMaxMessageBytes, 'x');
  Message::Fields plain{"t", Bytes(payload), 0, false, "pub"};
  EXPECT_TRUE(PublishBatch::Fits(plain));
  Message::Fields qos1 = plain;
  qos1.qos = 1;  // held back by pausing its publisher: not batched
  EXPECT_FALSE(PublishBatch::Fits(qos1));
  Message::Fields retained = plain;
  retained.retain = true;
  EXPECT_FALSE(PublishBatch::Fits(retained));
  Message::Fields big = plain;
  big.payload = Bytes(too_big);  // topic + payload + publisher over the limit
  EXPECT_FALSE(PublishBatch::Fits(big));
  Message::Fields committed = plain;
  committed.origin = 5;
  EXPECT_FALSE(PublishBatch::Fits(committed));
  // MQTT 5: an empty property set is plain; kept properties or an expiry
  // are not (the receiver could not rebuild them from the batch).
  mqtt::Properties none;
  Message::Fields v5 = plain;
  v5.properties = &none;
  EXPECT_TRUE(PublishBatch::Fits(v5));
  mqtt::Properties user;
  user.user_properties.emplace_back("k", "v");
  v5.properties = &user;
  EXPECT_FALSE(PublishBatch::Fits(v5));
  mqtt::Properties expiring;
  expiring.message_expiry_interval = 30;
  v5.properties = &expiring;
  EXPECT_FALSE(PublishBatch::Fits(v5));
  mqtt::Properties format;
  format.payload_format_indicator = 1;
  v5.properties = &format;
  EXPECT_FALSE(PublishBatch::Fits(v5));
}

TEST(MessageTest, ReclaimGivesBackTheMemoryOnlyToTheLastOwner) {
  const std::string payload = "hello";
  const Message::Fields fields{"a/b", Bytes(payload), 1, false, "me"};
  void* memory = ::operator new(Message::AllocationSize(fields));
  MessageRef message = MessageRef::Adopt(Message::MakeAt(memory, fields));
  EXPECT_EQ(message->topic(), "a/b");
  MessageRef kept = message;  // a queue keeps it
  EXPECT_EQ(Message::Reclaim(std::move(message)), nullptr);
  EXPECT_EQ(kept->RefCountForTesting(), 1u);
  EXPECT_EQ(
      std::string(reinterpret_cast<const char*>(kept->payload().data()), kept->payload().size()),
      "hello");
  // The last reference: the memory comes back, to build the next one in.
  void* again = Message::Reclaim(std::move(kept));
  EXPECT_EQ(again, memory);
  MessageRef next = MessageRef::Adopt(Message::MakeAt(again, {"c", Bytes(payload), 0, false, ""}));
  EXPECT_EQ(next->topic(), "c");
  EXPECT_EQ(next->qos(), 0);
}

}  // namespace
}  // namespace shardmq::broker
