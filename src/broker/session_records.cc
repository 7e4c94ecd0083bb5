#include "broker/session_records.h"

#include "absl/strings/str_format.h"
#include "broker/record_codec.h"

namespace shardmq::broker {
namespace {

using records::PutProperties;
using records::PutString;
using records::PutU16;
using records::PutU32;
using records::PutU64;
using records::PutU8;
using records::Reader;

constexpr uint8_t kFlagRetain = 1;
constexpr uint8_t kFlagExpiry = 2;

constexpr uint8_t kOptionNoLocal = 1;
constexpr uint8_t kOptionRetainAsPublished = 2;
constexpr int kRetainHandlingShift = 2;

void PutMessageHead(uint8_t qos, bool retain, std::optional<int64_t> expires_at_ns,
                    std::string& out) {
  PutU8(qos, out);
  PutU8(static_cast<uint8_t>((retain ? kFlagRetain : 0) | (expires_at_ns ? kFlagExpiry : 0)), out);
  if (expires_at_ns) PutU64(static_cast<uint64_t>(*expires_at_ns), out);
}

absl::Status Short(uint8_t type) {
  return absl::DataLossError(absl::StrFormat("session record type %#x: fields past its end", type));
}

bool ReadMessageHead(Reader& in, MessageRecord& message) {
  uint8_t flags = 0;
  if (!in.U8(message.qos) || !in.U8(flags)) return false;
  if (message.qos > 2 || (flags & ~(kFlagRetain | kFlagExpiry)) != 0) return false;
  message.retain = (flags & kFlagRetain) != 0;
  if (flags & kFlagExpiry) {
    int64_t expiry = 0;
    if (!in.I64(expiry)) return false;
    message.expires_at_ns = expiry;
  }
  return true;
}

}  // namespace

void EncodeSessionPut(std::string_view client_id, uint32_t expiry_interval,
                      uint8_t protocol_version, const std::optional<std::string>& username,
                      uint64_t commit_mark, std::string& out) {
  PutString(client_id, out);
  PutU32(expiry_interval, out);
  PutU8(protocol_version, out);
  PutU8(username.has_value() ? 1 : 0, out);
  PutString(username.value_or(""), out);
  PutU64(commit_mark, out);
}

void EncodeSessionOffline(std::string_view client_id, int64_t wall_ns, uint32_t expiry_interval,
                          std::string& out) {
  PutString(client_id, out);
  PutU64(static_cast<uint64_t>(wall_ns), out);
  PutU32(expiry_interval, out);
}

void EncodeClientOnly(std::string_view client_id, std::string& out) { PutString(client_id, out); }

void EncodeSubscribe(std::string_view client_id, std::string_view filter,
                     const topic::SubscriptionOptions& options, std::string& out) {
  PutString(client_id, out);
  PutString(filter, out);
  PutU8(options.qos, out);
  PutU8(static_cast<uint8_t>((options.no_local ? kOptionNoLocal : 0) |
                             (options.retain_as_published ? kOptionRetainAsPublished : 0) |
                             (options.retain_handling << kRetainHandlingShift)),
        out);
  PutU32(options.subscription_id, out);
}

void EncodeUnsubscribe(std::string_view client_id, std::string_view filter, std::string& out) {
  PutString(client_id, out);
  PutString(filter, out);
}

void EncodeMessage(uint64_t body, uint64_t origin, std::string_view topic,
                   std::string_view publisher, uint8_t qos, bool retain,
                   std::optional<int64_t> expires_at_ns, const mqtt::Properties* properties,
                   absl::Span<const uint8_t> payload, std::string& out) {
  PutU64(body, out);
  PutU64(origin, out);
  PutMessageHead(qos, retain, expires_at_ns, out);
  PutString(topic, out);
  PutString(publisher, out);
  PutProperties(properties, out);
  out.append(reinterpret_cast<const char*>(payload.data()), payload.size());
}

void EncodeQueued(uint64_t item, uint64_t body, std::string_view client_id, uint8_t qos,
                  bool retain, std::string_view shared_group,
                  absl::Span<const uint32_t> subscription_ids, std::string& out) {
  PutU64(item, out);
  PutU64(body, out);
  PutString(client_id, out);
  PutU8(qos, out);
  PutU8(retain ? kFlagRetain : 0, out);
  PutString(shared_group, out);
  PutU16(static_cast<uint16_t>(subscription_ids.size()), out);
  for (uint32_t id : subscription_ids) PutU32(id, out);
}

void EncodeSent(uint64_t item, uint16_t packet_id, std::string& out) {
  PutU64(item, out);
  PutU16(packet_id, out);
}

void EncodeItemOnly(uint64_t item, std::string& out) { PutU64(item, out); }

void EncodeMessageAt(uint64_t body, uint64_t segment, uint64_t offset, uint32_t length,
                     uint64_t stored_body, std::string& out) {
  PutU64(body, out);
  PutU64(segment, out);
  PutU64(offset, out);
  PutU32(length, out);
  PutU64(stored_body, out);
}

void EncodeInboundQos2(std::string_view client_id, uint16_t packet_id, bool added,
                       uint64_t commit_number, std::string& out) {
  PutString(client_id, out);
  PutU16(packet_id, out);
  PutU8(added ? 1 : 0, out);
  PutU64(commit_number, out);
}

void EncodeWill(std::string_view client_id, int64_t due_wall_ns, std::string_view topic,
                uint8_t qos, bool retain, std::optional<int64_t> expires_at_ns,
                const mqtt::Properties* properties, absl::Span<const uint8_t> payload,
                std::string& out) {
  PutString(client_id, out);
  PutU64(static_cast<uint64_t>(due_wall_ns), out);
  PutMessageHead(qos, retain, expires_at_ns, out);
  PutString(topic, out);
  PutProperties(properties, out);
  out.append(reinterpret_cast<const char*>(payload.data()), payload.size());
}

absl::StatusOr<SessionRecord> DecodeSessionRecord(uint8_t type, absl::Span<const uint8_t> payload) {
  SessionRecord r;
  r.type = type;
  Reader in(payload);
  switch (type) {
    case kRecordSessionPut: {
      uint8_t has_username = 0;
      std::string_view username;
      if (!in.String(r.client_id) || !in.U32(r.expiry_interval) || !in.U8(r.protocol_version) ||
          !in.U8(has_username) || !in.String(username) || has_username > 1 || !in.U64(r.commit)) {
        return Short(type);
      }
      if (has_username == 1) r.username = username;
      break;
    }
    case kRecordSessionOffline:
      if (!in.String(r.client_id) || !in.I64(r.wall_ns) || !in.U32(r.expiry_interval)) {
        return Short(type);
      }
      break;
    case kRecordSessionEnd:
    case kRecordWillDone:
      if (!in.String(r.client_id)) return Short(type);
      break;
    case kRecordSubscribe: {
      uint8_t bits = 0;
      if (!in.String(r.client_id) || !in.String(r.filter) || !in.U8(r.options.qos) ||
          !in.U8(bits) || !in.U32(r.options.subscription_id)) {
        return Short(type);
      }
      r.options.no_local = (bits & kOptionNoLocal) != 0;
      r.options.retain_as_published = (bits & kOptionRetainAsPublished) != 0;
      r.options.retain_handling = static_cast<uint8_t>((bits >> kRetainHandlingShift) & 3);
      if (r.options.qos > 2 || r.options.retain_handling > 2 || (bits >> 4) != 0) {
        return absl::DataLossError(absl::StrFormat("subscription record of %s: QoS %d, options %#x",
                                                   r.client_id, r.options.qos, bits));
      }
      break;
    }
    case kRecordUnsubscribe:
      if (!in.String(r.client_id) || !in.String(r.filter)) return Short(type);
      break;
    case kRecordMessage: {
      absl::Span<const uint8_t> properties;
      if (!in.U64(r.body) || !in.U64(r.commit) || !ReadMessageHead(in, r.message) ||
          !in.String(r.message.topic) || !in.String(r.message.publisher) ||
          !in.Prefixed(properties)) {
        return Short(type);
      }
      r.message.properties = properties;
      r.message.payload = in.rest();
      return r;
    }
    case kRecordQueued: {
      uint8_t flags = 0;
      uint16_t count = 0;
      if (!in.U64(r.item) || !in.U64(r.body) || !in.String(r.client_id) || !in.U8(r.qos) ||
          !in.U8(flags) || !in.String(r.shared_group) || !in.U16(count)) {
        return Short(type);
      }
      if (r.qos > 2 || (flags & ~kFlagRetain) != 0) return Short(type);
      r.retain = (flags & kFlagRetain) != 0;
      r.subscription_ids.resize(count);
      for (uint32_t& id : r.subscription_ids) {
        if (!in.U32(id)) return Short(type);
      }
      break;
    }
    case kRecordSent:
      if (!in.U64(r.item) || !in.U16(r.packet_id)) return Short(type);
      break;
    case kRecordReleased:
    case kRecordDone:
      if (!in.U64(r.item)) return Short(type);
      break;
    case kRecordMessageAt:
      if (!in.U64(r.body) || !in.U64(r.segment) || !in.U64(r.offset) || !in.U32(r.length) ||
          !in.U64(r.stored_body)) {
        return Short(type);
      }
      break;
    case kRecordInboundQos2: {
      uint8_t added = 0;
      if (!in.String(r.client_id) || !in.U16(r.packet_id) || !in.U8(added) || added > 1 ||
          !in.U64(r.commit)) {
        return Short(type);
      }
      r.added = added == 1;
      break;
    }
    case kRecordWill: {
      absl::Span<const uint8_t> properties;
      if (!in.String(r.client_id) || !in.I64(r.wall_ns) || !ReadMessageHead(in, r.message) ||
          !in.String(r.message.topic) || !in.Prefixed(properties)) {
        return Short(type);
      }
      r.message.publisher = r.client_id;
      r.message.properties = properties;
      r.message.payload = in.rest();
      return r;
    }
    default:
      return absl::InvalidArgumentError(absl::StrFormat("not a session record: type %#x", type));
  }
  if (!in.empty()) {
    return absl::DataLossError(absl::StrFormat("session record type %#x: %d bytes past its fields",
                                               type, in.rest().size()));
  }
  return r;
}

}  // namespace shardmq::broker
