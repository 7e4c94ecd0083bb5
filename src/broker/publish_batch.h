// Messages one shard forwards to another in a single mail item
// (kMailPublishBatch): each message's bytes copied back to back into one
// buffer. A message that only other shards want crosses as a copy in a
// batch instead of a Message of its own with a mail item and a return trip
// for its last reference (DESIGN.md, "How a PUBLISH travels", step 5); the
// receiver builds the Message it delivers itself.
//
// Only plain QoS 0 messages qualify (Fits): no retain, no properties a
// subscriber receives, no expiry, and small. Everything else travels as a
// shared Message (kMailPublish). QoS 1 and 2 stay out because a subscriber
// that falls behind holds back its publishers with a mail to their shard
// (kMailPausePublisher), and what was in the mailboxes when that mail
// landed still arrives: the 32-times-bigger reach of a mailbox of batches
// took one subscriber's queue over its hard cap and lost QoS 1 messages.
// (QoS 0 messages to a slow subscriber are dropped by design.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "broker/message.h"

namespace shardmq::broker {

class PublishBatch {
 public:
  // At most this many messages per batch. The mailbox counts a batch as this
  // many items (shard::Shard::kBulkItemWeight), so it holds no more work
  // than a mailbox of single messages would.
  static constexpr uint32_t kMaxMessages = 32;
  // A message qualifies when its topic, payload and publisher id take at
  // most this many bytes; bigger ones are cheaper shared than copied.
  static constexpr size_t kMaxMessageBytes = 512;

  static PublishBatch* Create();
  static void Destroy(PublishBatch* batch);

  // Whether the message can travel in a batch (see above).
  static bool Fits(const Message::Fields& fields) {
    return fields.qos == 0 && !fields.retain && fields.origin == 0 && Message::IsPlain(fields) &&
           fields.topic.size() + fields.payload.size() + fields.publisher.size() <=
               kMaxMessageBytes;
  }

  // Copies a message that Fits in, with its topic's route cache hash. False,
  // and nothing copied, if the batch is full.
  bool Append(const Message::Fields& fields, uint64_t route_hash);

  // fn(const Message::Fields&, uint64_t route_hash) for each message, in the
  // order appended. The fields point into the batch.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    const char* p = bytes();
    for (uint32_t i = 0; i < count_; ++i) {
      Entry entry;
      std::memcpy(&entry, p, sizeof(entry));
      const char* text = p + sizeof(Entry);
      Message::Fields fields;
      fields.topic = std::string_view(text, entry.topic_size);
      fields.payload = absl::Span<const uint8_t>(
          reinterpret_cast<const uint8_t*>(text + entry.topic_size), entry.payload_size);
      fields.publisher =
          std::string_view(text + entry.topic_size + entry.payload_size, entry.publisher_size);
      fields.qos = entry.qos;
      fn(static_cast<const Message::Fields&>(fields), entry.route_hash);
      p += EntrySize(entry.topic_size + entry.payload_size + entry.publisher_size);
    }
  }

  uint32_t count() const { return count_; }
  // Empties the batch to be filled again.
  void Clear() {
    count_ = 0;
    used_ = 0;
  }

 private:
  struct Entry {
    uint64_t route_hash;
    uint32_t topic_size;
    uint32_t payload_size;
    uint16_t publisher_size;
    uint8_t qos;
  };
  // Room for kMaxMessages entries of about 100 bytes; a batch is full at
  // whichever limit comes first. (The largest entry fits an empty batch.)
  static constexpr size_t kCapacity = 4096 - 16;
  static_assert(sizeof(Entry) + kMaxMessageBytes <= kCapacity);

  static constexpr size_t EntrySize(size_t text) { return (sizeof(Entry) + text + 7) & ~size_t{7}; }
  char* bytes() { return reinterpret_cast<char*>(this + 1); }
  const char* bytes() const { return reinterpret_cast<const char*>(this + 1); }

  PublishBatch() = default;

  uint32_t count_ = 0;
  uint32_t used_ = 0;
  uint64_t unused_ = 0;  // keeps the entries after the header 16-byte aligned
};

}  // namespace shardmq::broker
