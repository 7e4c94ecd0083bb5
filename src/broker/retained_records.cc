#include "broker/retained_records.h"

#include <cstring>

#include "absl/strings/str_format.h"
#include "broker/client_id.h"

namespace shardmq::broker {
namespace {

constexpr uint8_t kFlagExpiry = 1;

void PutU32(uint32_t v, std::string& out) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
void PutU64(uint64_t v, std::string& out) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

// Reads little-endian integers and byte runs off the front of a span.
class Reader {
 public:
  explicit Reader(absl::Span<const uint8_t> bytes) : bytes_(bytes) {}
  bool U8(uint8_t& v) {
    if (bytes_.size() < 1) return false;
    v = bytes_[0];
    bytes_.remove_prefix(1);
    return true;
  }
  bool U32(uint32_t& v) {
    if (bytes_.size() < 4) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(bytes_[i]) << (8 * i);
    bytes_.remove_prefix(4);
    return true;
  }
  bool U64(uint64_t& v) {
    if (bytes_.size() < 8) return false;
    v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(bytes_[i]) << (8 * i);
    bytes_.remove_prefix(8);
    return true;
  }
  bool Bytes(size_t n, absl::Span<const uint8_t>& v) {
    if (bytes_.size() < n) return false;
    v = bytes_.subspan(0, n);
    bytes_.remove_prefix(n);
    return true;
  }
  absl::Span<const uint8_t> rest() const { return bytes_; }

 private:
  absl::Span<const uint8_t> bytes_;
};

std::string_view AsString(absl::Span<const uint8_t> bytes) {
  return std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

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
  if (properties == nullptr) {
    PutU32(0, out);
  } else {
    // The block with its varint length, then the length prefix dropped: the
    // record's own u32 says how long the body is.
    const size_t body = mqtt::PropertiesBodySize(*properties);
    std::string block(mqtt::PropertiesSize(*properties), '\0');
    const size_t written =
        mqtt::EncodeProperties(*properties, body, reinterpret_cast<uint8_t*>(block.data()));
    PutU32(static_cast<uint32_t>(body), out);
    out.append(block.data() + (written - body), body);
  }
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
  mqtt::Properties properties;
  if (record.properties.empty()) return properties;
  mqtt::PropertyError error =
      mqtt::DecodeProperties(record.properties, mqtt::kCtxPublish, &properties);
  if (!error.ok()) {
    return absl::DataLossError(absl::StrFormat("retained record of %s: properties: %s",
                                               std::string(record.topic),
                                               error.what != nullptr ? error.what : "invalid"));
  }
  return properties;
}

}  // namespace shardmq::broker
