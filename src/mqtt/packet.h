// Decoded MQTT control packets: one plain struct per packet type and a
// std::variant over them. Strings, binary fields and payloads are views into
// the bytes the packet was decoded from (or, for encoding, into memory the
// caller keeps alive); none of the structs owns memory in the common case.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <variant>

#include "absl/container/inlined_vector.h"
#include "absl/types/span.h"
#include "mqtt/properties.h"
#include "mqtt/protocol_version.h"
#include "mqtt/reason_code.h"

namespace shardmq::mqtt {

// Control packet types (fixed header bits 7..4).
enum class PacketType : uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
  kAuth = 15,  // MQTT 5 only.
};

// Returns "CONNECT", "PUBLISH", ... for logs.
const char* PacketTypeName(PacketType type);

// Will Message carried in CONNECT.
struct Will {
  Properties properties;  // Will Properties (MQTT 5).
  std::string_view topic;
  absl::Span<const uint8_t> payload;
  uint8_t qos = 0;
  bool retain = false;

  bool operator==(const Will&) const = default;
};

// CONNECT. `version` comes from the packet itself.
struct Connect {
  ProtocolVersion version = ProtocolVersion::kV311;
  bool bridge = false;      // Protocol level had the 0x80 bridge bit (0x83/0x84).
  bool clean_start = true;  // Clean Session in 3.x.
  uint16_t keep_alive = 0;
  std::string_view client_id;
  std::optional<Will> will;
  std::optional<std::string_view> username;
  std::optional<absl::Span<const uint8_t>> password;
  Properties properties;

  bool operator==(const Connect&) const = default;
};

// CONNACK. 3.x uses `return_code`, MQTT 5 uses `reason_code` and properties.
struct Connack {
  bool session_present = false;
  ConnectReturnCode return_code = ConnectReturnCode::kAccepted;
  ReasonCode reason_code = ReasonCode::kSuccess;
  Properties properties;

  bool operator==(const Connack&) const = default;
};

// PUBLISH. The payload is the rest of the packet.
struct Publish {
  std::string_view topic;  // May be empty in MQTT 5 with a Topic Alias.
  absl::Span<const uint8_t> payload;
  uint16_t packet_id = 0;  // Present only for QoS 1 and 2.
  uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  Properties properties;

  bool operator==(const Publish&) const = default;
};

// PUBACK, PUBREC, PUBREL and PUBCOMP (same layout; `type` says which).
struct PubAck {
  PacketType type = PacketType::kPuback;
  uint16_t packet_id = 0;
  ReasonCode reason_code = ReasonCode::kSuccess;  // MQTT 5.
  Properties properties;                          // MQTT 5.

  bool operator==(const PubAck&) const = default;
};

// Subscription Options byte of a SUBSCRIBE entry.
struct SubscribeOptions {
  uint8_t qos = 0;                   // Maximum QoS.
  bool no_local = false;             // MQTT 5.
  bool retain_as_published = false;  // MQTT 5.
  uint8_t retain_handling = 0;       // MQTT 5: 0, 1 or 2.

  bool operator==(const SubscribeOptions&) const = default;
};

// One topic filter of a SUBSCRIBE.
struct Subscription {
  std::string_view filter;  // Validated; may be "$share/{group}/{filter}" in MQTT 5.
  SubscribeOptions options;

  bool operator==(const Subscription&) const = default;
};

// SUBSCRIBE.
struct Subscribe {
  uint16_t packet_id = 0;
  Properties properties;
  absl::InlinedVector<Subscription, 4> subscriptions;

  bool operator==(const Subscribe&) const = default;
};

// SUBACK. In 3.x the codes are granted QoS 0/1/2 or 0x80 (kUnspecifiedError).
struct Suback {
  uint16_t packet_id = 0;
  Properties properties;
  absl::InlinedVector<ReasonCode, 4> reason_codes;

  bool operator==(const Suback&) const = default;
};

// UNSUBSCRIBE.
struct Unsubscribe {
  uint16_t packet_id = 0;
  Properties properties;
  absl::InlinedVector<std::string_view, 4> topic_filters;

  bool operator==(const Unsubscribe&) const = default;
};

// UNSUBACK. Reason codes and properties exist in MQTT 5 only.
struct Unsuback {
  uint16_t packet_id = 0;
  Properties properties;
  absl::InlinedVector<ReasonCode, 4> reason_codes;

  bool operator==(const Unsuback&) const = default;
};

// PINGREQ.
struct PingReq {
  bool operator==(const PingReq&) const = default;
};

// PINGRESP.
struct PingResp {
  bool operator==(const PingResp&) const = default;
};

// DISCONNECT. Reason code and properties exist in MQTT 5 only.
struct Disconnect {
  ReasonCode reason_code = ReasonCode::kNormalDisconnection;
  Properties properties;

  bool operator==(const Disconnect&) const = default;
};

// AUTH (MQTT 5 only).
struct Auth {
  ReasonCode reason_code = ReasonCode::kSuccess;
  Properties properties;

  bool operator==(const Auth&) const = default;
};

// Any control packet. Index order is not the wire type; use GetPacketType().
using Packet = std::variant<Connect, Connack, Publish, PubAck, Subscribe, Suback, Unsubscribe,
                            Unsuback, PingReq, PingResp, Disconnect, Auth>;

// Returns the wire packet type of `packet`.
PacketType GetPacketType(const Packet& packet);

}  // namespace shardmq::mqtt
