#include "broker/retained_records.h"

#include <cstring>

#include "absl/strings/str_format.h"
#include "broker/client_id.h"
#include "broker/record_codec.h"

namespace shardmq::broker {
namespace {

using records::AsString;
using records::PutU32;
using records::PutU64;
using records::Reader;

constexpr uint8_t kFlagExpiry = 1;

}  // namespace

int RetainedOwner(std::string_view topic, int shard_count) {
  // The same spreading as client ids: a stable hash, not absl::Hash, so that
  // tests (and a future tool) can tell the owner from outside.
  return HomeShard(topic, shard_count);
}

void EncodeRetainSet(int64_t stamp_ns, std::string_view topic, uint8_t qos,
                     std::optional<int64_t> expires_at_ns, const mqtt::Properties* properties,
                     absl::Span<const uint8_t> payload, std::string& out) {
  PutU64(static_cast<uint64_t>(stamp_ns), out);
  out.push_back(static_cast<char>(qos));
  out.push_back(static_cast<char>(expires_at_ns ? kFlagExpiry : 0));
  if (expires_at_ns) PutU64(static_cast<uint64_t>(*expires_at_ns), out);
  PutU32(static_cast<uint32_t>(topic.size()), out);
  out.append(topic);
  records::PutProperties(properties, out);
  out.append(reinterpret_cast<const char*>(payload.data()), payload.size());
}

void EncodeRetainClear(int64_t stamp_ns, std::string_view topic, std::string& out) {
  PutU64(static_cast<uint64_t>(stamp_ns), out);
  out.append(topic);
}

absl::StatusOr<RetainedRecord> DecodeRetained(uint8_t type, absl::Span<const uint8_t> payload) {
  RetainedRecord record;
  Reader in(payload);
  uint64_t stamp = 0;
  if (!in.U64(stamp)) return absl::DataLossError("retained record: shorter than its stamp");
  record.stamp_ns = static_cast<int64_t>(stamp);
  if (type == kRecordRetainClear) {
    record.clear = true;
    record.topic = AsString(in.rest());
    return record;
  }
  if (type != kRecordRetainSet) {
    return absl::InvalidArgumentError(absl::StrFormat("not a retained record: type %d", type));
  }
  uint8_t flags = 0;
  uint32_t topic_size = 0;
  uint32_t properties_size = 0;
  absl::Span<const uint8_t> topic;
  if (!in.U8(record.qos) || !in.U8(flags)) return absl::DataLossError("retained record: short");
  if (record.qos > 2 || (flags & ~kFlagExpiry) != 0) {
    return absl::DataLossError(
        absl::StrFormat("retained record: QoS %d, flags %#x", record.qos, flags));
  }
  if (flags & kFlagExpiry) {
    uint64_t expiry = 0;
    if (!in.U64(expiry)) return absl::DataLossError("retained record: short expiry");
    record.expires_at_ns = static_cast<int64_t>(expiry);
  }
  if (!in.U32(topic_size) || !in.Bytes(topic_size, topic) || !in.U32(properties_size) ||
      !in.Bytes(properties_size, record.properties)) {
    return absl::DataLossError("retained record: topic or properties past its end");
  }
  record.topic = AsString(topic);
  record.payload = in.rest();
  return record;
}

absl::StatusOr<mqtt::Properties> DecodeRetainedProperties(const RetainedRecord& record) {
  absl::StatusOr<mqtt::Properties> properties = records::DecodePropertiesBody(record.properties);
  if (!properties.ok()) {
    return absl::DataLossError(absl::StrFormat(
        "retained record of %s: %s", std::string(record.topic), properties.status().message()));
  }
  return properties;
}

}  // namespace shardmq::broker
