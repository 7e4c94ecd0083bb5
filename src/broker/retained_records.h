// The log records of retained messages (issue 9, DESIGN.md "Durable state").
//
//   RETAIN SET   = stamp u64 | QoS u8 | flags u8 | [expiry u64] |
//                  topic length u32 | topic | properties length u32 |
//                  MQTT 5 property block body | payload (the rest)
//   RETAIN CLEAR = stamp u64 | topic (the rest)
// Little-endian. `stamp` is the owner shard's wall clock in nanoseconds,
// made strictly increasing per shard, so the newest record of a topic is
// well defined across shard directories (the shard count may change between
// runs; DESIGN.md). flags bit 0: an absolute wall-clock expiry follows (the
// Message Expiry Interval, dated when the PUBLISH arrived). The properties
// are those a subscriber receives (Message::properties()), in PUBLISH's own
// encoding.
//
// Each retained change is logged once, by the topic's owner shard
// (RetainedOwner), whose order decides.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "mqtt/properties.h"

namespace shardmq::broker {

inline constexpr uint8_t kRecordRetainSet = 0x10;
inline constexpr uint8_t kRecordRetainClear = 0x11;

// The shard that logs changes of `topic`'s retained message.
int RetainedOwner(std::string_view topic, int shard_count);

// One decoded record. Views into the record's payload, which must outlive it.
struct RetainedRecord {
  bool clear = false;
  int64_t stamp_ns = 0;
  std::string_view topic;
  uint8_t qos = 0;
  // Wall-clock nanoseconds after which the message is gone.
  std::optional<int64_t> expires_at_ns;
  // The property block body (no length prefix); empty when none.
  absl::Span<const uint8_t> properties;
  absl::Span<const uint8_t> payload;
};

// Appends a RETAIN SET payload to `out`; `properties` may be nullptr.
void EncodeRetainSet(int64_t stamp_ns, std::string_view topic, uint8_t qos,
                     std::optional<int64_t> expires_at_ns, const mqtt::Properties* properties,
                     absl::Span<const uint8_t> payload, std::string& out);
void EncodeRetainClear(int64_t stamp_ns, std::string_view topic, std::string& out);

// Decodes a record of type kRecordRetainSet or kRecordRetainClear; an error
// names what is wrong (a checksummed record that does not parse is a bug or
// a newer format, not a torn write).
absl::StatusOr<RetainedRecord> DecodeRetained(uint8_t type, absl::Span<const uint8_t> payload);

// The record's properties as mqtt::Properties (views into the record).
absl::StatusOr<mqtt::Properties> DecodeRetainedProperties(const RetainedRecord& record);

}  // namespace shardmq::broker
