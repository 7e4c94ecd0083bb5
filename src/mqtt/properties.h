// MQTT 5 properties (section 2.2.2): identifiers, wire types, the packets
// each may appear in, and the decoded Properties struct. Decoding validates
// placement, repetition and values; encoding writes them in identifier order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/types/span.h"
#include "mqtt/reason_code.h"

namespace shardmq::mqtt {

// Property identifiers (MQTT 5 table 2-4).
enum class PropertyId : uint8_t {
  kPayloadFormatIndicator = 0x01,
  kMessageExpiryInterval = 0x02,
  kContentType = 0x03,
  kResponseTopic = 0x08,
  kCorrelationData = 0x09,
  kSubscriptionIdentifier = 0x0B,
  kSessionExpiryInterval = 0x11,
  kAssignedClientIdentifier = 0x12,
  kServerKeepAlive = 0x13,
  kAuthenticationMethod = 0x15,
  kAuthenticationData = 0x16,
  kRequestProblemInformation = 0x17,
  kWillDelayInterval = 0x18,
  kRequestResponseInformation = 0x19,
  kResponseInformation = 0x1A,
  kServerReference = 0x1C,
  kReasonString = 0x1F,
  kReceiveMaximum = 0x21,
  kTopicAliasMaximum = 0x22,
  kTopicAlias = 0x23,
  kMaximumQos = 0x24,
  kRetainAvailable = 0x25,
  kUserProperty = 0x26,
  kMaximumPacketSize = 0x27,
  kWildcardSubscriptionAvailable = 0x28,
  kSubscriptionIdentifierAvailable = 0x29,
  kSharedSubscriptionAvailable = 0x2A,
};

// Wire data types of property values (MQTT 5 section 1.5).
enum class PropertyType : uint8_t {
  kByte,
  kTwoByteInteger,
  kFourByteInteger,
  kVariableByteInteger,
  kUtf8String,
  kBinaryData,
  kUtf8StringPair,
};

// Where a property block sits; a bit set of these says where an identifier
// may appear. PUBACK, PUBREC, PUBREL and PUBCOMP share one context.
enum PropertyContext : uint16_t {
  kCtxConnect = 1 << 0,
  kCtxConnack = 1 << 1,
  kCtxPublish = 1 << 2,
  kCtxWill = 1 << 3,
  kCtxPubAck = 1 << 4,
  kCtxSubscribe = 1 << 5,
  kCtxSuback = 1 << 6,
  kCtxUnsubscribe = 1 << 7,
  kCtxUnsuback = 1 << 8,
  kCtxDisconnect = 1 << 9,
  kCtxAuth = 1 << 10,
};

// Static description of one property identifier.
struct PropertyInfo {
  PropertyId id;
  PropertyType type;
  uint16_t contexts;  // Bit set of PropertyContext.
  const char* name;
};

// Returns the description of `id`, or nullptr for an unknown identifier.
const PropertyInfo* FindPropertyInfo(uint8_t id);

// User Property name/value pairs, in wire order. Two fit inline.
using UserProperties = absl::InlinedVector<std::pair<std::string_view, std::string_view>, 2>;
// Subscription Identifiers: one in SUBSCRIBE, possibly several in PUBLISH.
using SubscriptionIds = absl::InlinedVector<uint32_t, 1>;

// All MQTT 5 properties of one property block. Strings and binary data are
// views into the decoded input (or into caller-owned memory when encoding).
// Cheap to construct: no heap allocation until more than two user
// properties or one subscription identifier.
struct Properties {
  std::optional<uint8_t> payload_format_indicator;             // 0x01 PUBLISH, Will
  std::optional<uint32_t> message_expiry_interval;             // 0x02 PUBLISH, Will
  std::optional<std::string_view> content_type;                // 0x03 PUBLISH, Will
  std::optional<std::string_view> response_topic;              // 0x08 PUBLISH, Will
  std::optional<absl::Span<const uint8_t>> correlation_data;   // 0x09 PUBLISH, Will
  SubscriptionIds subscription_identifiers;                    // 0x0B PUBLISH, SUBSCRIBE
  std::optional<uint32_t> session_expiry_interval;             // 0x11 CONNECT, CONNACK, DISCONNECT
  std::optional<std::string_view> assigned_client_identifier;  // 0x12 CONNACK
  std::optional<uint16_t> server_keep_alive;                   // 0x13 CONNACK
  std::optional<std::string_view> authentication_method;       // 0x15 CONNECT, CONNACK, AUTH
  std::optional<absl::Span<const uint8_t>> authentication_data;  // 0x16 CONNECT, CONNACK, AUTH
  std::optional<uint8_t> request_problem_information;            // 0x17 CONNECT
  std::optional<uint32_t> will_delay_interval;                   // 0x18 Will
  std::optional<uint8_t> request_response_information;           // 0x19 CONNECT
  std::optional<std::string_view> response_information;          // 0x1A CONNACK
  std::optional<std::string_view> server_reference;              // 0x1C CONNACK, DISCONNECT
  std::optional<std::string_view> reason_string;             // 0x1F CONNACK, acks, DISCONNECT, AUTH
  std::optional<uint16_t> receive_maximum;                   // 0x21 CONNECT, CONNACK
  std::optional<uint16_t> topic_alias_maximum;               // 0x22 CONNECT, CONNACK
  std::optional<uint16_t> topic_alias;                       // 0x23 PUBLISH
  std::optional<uint8_t> maximum_qos;                        // 0x24 CONNACK
  std::optional<uint8_t> retain_available;                   // 0x25 CONNACK
  UserProperties user_properties;                            // 0x26 everywhere
  std::optional<uint32_t> maximum_packet_size;               // 0x27 CONNECT, CONNACK
  std::optional<uint8_t> wildcard_subscription_available;    // 0x28 CONNACK
  std::optional<uint8_t> subscription_identifier_available;  // 0x29 CONNACK
  std::optional<uint8_t> shared_subscription_available;      // 0x2A CONNACK

  bool operator==(const Properties&) const = default;
};

// Error from DecodeProperties: reason == kSuccess means no error.
struct PropertyError {
  ReasonCode reason = ReasonCode::kSuccess;
  const char* what = nullptr;
  bool ok() const { return reason == ReasonCode::kSuccess; }
};

// Decodes the property block body `data` (after the Property Length) in
// context `ctx` into *out (which must be default-constructed). Enforces: known
// identifier allowed in `ctx` and well-typed (else Malformed Packet, section
// 2.2.2.2), no repetition except User Property and Subscription Identifier in
// PUBLISH (Protocol Error), and value ranges (Protocol Error, e.g. Receive
// Maximum 0, Maximum Packet Size 0, Subscription Identifier 0, byte flags
// other than 0/1, Maximum QoS other than 0/1, Topic Alias 0 is Topic Alias
// invalid), Authentication Data without Authentication Method (Protocol
// Error), invalid UTF-8 (Malformed Packet).
PropertyError DecodeProperties(absl::Span<const uint8_t> data, PropertyContext ctx,
                               Properties* out);

// Size in bytes of the encoded property block body (without the Property
// Length prefix).
size_t PropertiesBodySize(const Properties& props);

// Size of the whole block: Property Length varint + body.
size_t PropertiesSize(const Properties& props);

// Writes the property block (Property Length + body of `body_size` bytes, as
// returned by PropertiesBodySize) at `out`; returns the bytes written.
size_t EncodeProperties(const Properties& props, size_t body_size, uint8_t* out);

}  // namespace shardmq::mqtt
