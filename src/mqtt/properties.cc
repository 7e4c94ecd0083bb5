// Property table, validating decoder and the single layout used for both
// sizing and encoding property blocks.
#include "mqtt/properties.h"

#include <array>

#include "mqtt/internal/wire.h"
#include "mqtt/topic_validation.h"
#include "mqtt/utf8.h"

namespace shardmq::mqtt {
namespace {

using internal::Reader;

constexpr uint16_t kCtxAcks = kCtxPubAck;
constexpr uint16_t kCtxAllWithReasonString =
    kCtxConnack | kCtxAcks | kCtxSuback | kCtxUnsuback | kCtxDisconnect | kCtxAuth;
constexpr uint16_t kCtxAll = kCtxConnect | kCtxConnack | kCtxPublish | kCtxWill | kCtxAcks |
                             kCtxSubscribe | kCtxSuback | kCtxUnsubscribe | kCtxUnsuback |
                             kCtxDisconnect | kCtxAuth;

// MQTT 5 table 2-4, with the packets each property may appear in.
constexpr PropertyInfo kPropertyTable[] = {
    {PropertyId::kPayloadFormatIndicator, PropertyType::kByte, kCtxPublish | kCtxWill,
     "Payload Format Indicator"},
    {PropertyId::kMessageExpiryInterval, PropertyType::kFourByteInteger, kCtxPublish | kCtxWill,
     "Message Expiry Interval"},
    {PropertyId::kContentType, PropertyType::kUtf8String, kCtxPublish | kCtxWill, "Content Type"},
    {PropertyId::kResponseTopic, PropertyType::kUtf8String, kCtxPublish | kCtxWill,
     "Response Topic"},
    {PropertyId::kCorrelationData, PropertyType::kBinaryData, kCtxPublish | kCtxWill,
     "Correlation Data"},
    {PropertyId::kSubscriptionIdentifier, PropertyType::kVariableByteInteger,
     kCtxPublish | kCtxSubscribe, "Subscription Identifier"},
    {PropertyId::kSessionExpiryInterval, PropertyType::kFourByteInteger,
     kCtxConnect | kCtxConnack | kCtxDisconnect, "Session Expiry Interval"},
    {PropertyId::kAssignedClientIdentifier, PropertyType::kUtf8String, kCtxConnack,
     "Assigned Client Identifier"},
    {PropertyId::kServerKeepAlive, PropertyType::kTwoByteInteger, kCtxConnack, "Server Keep Alive"},
    {PropertyId::kAuthenticationMethod, PropertyType::kUtf8String,
     kCtxConnect | kCtxConnack | kCtxAuth, "Authentication Method"},
    {PropertyId::kAuthenticationData, PropertyType::kBinaryData,
     kCtxConnect | kCtxConnack | kCtxAuth, "Authentication Data"},
    {PropertyId::kRequestProblemInformation, PropertyType::kByte, kCtxConnect,
     "Request Problem Information"},
    {PropertyId::kWillDelayInterval, PropertyType::kFourByteInteger, kCtxWill,
     "Will Delay Interval"},
    {PropertyId::kRequestResponseInformation, PropertyType::kByte, kCtxConnect,
     "Request Response Information"},
    {PropertyId::kResponseInformation, PropertyType::kUtf8String, kCtxConnack,
     "Response Information"},
    {PropertyId::kServerReference, PropertyType::kUtf8String, kCtxConnack | kCtxDisconnect,
     "Server Reference"},
    {PropertyId::kReasonString, PropertyType::kUtf8String, kCtxAllWithReasonString,
     "Reason String"},
    {PropertyId::kReceiveMaximum, PropertyType::kTwoByteInteger, kCtxConnect | kCtxConnack,
     "Receive Maximum"},
    {PropertyId::kTopicAliasMaximum, PropertyType::kTwoByteInteger, kCtxConnect | kCtxConnack,
     "Topic Alias Maximum"},
    {PropertyId::kTopicAlias, PropertyType::kTwoByteInteger, kCtxPublish, "Topic Alias"},
    {PropertyId::kMaximumQos, PropertyType::kByte, kCtxConnack, "Maximum QoS"},
    {PropertyId::kRetainAvailable, PropertyType::kByte, kCtxConnack, "Retain Available"},
    {PropertyId::kUserProperty, PropertyType::kUtf8StringPair, kCtxAll, "User Property"},
    {PropertyId::kMaximumPacketSize, PropertyType::kFourByteInteger, kCtxConnect | kCtxConnack,
     "Maximum Packet Size"},
    {PropertyId::kWildcardSubscriptionAvailable, PropertyType::kByte, kCtxConnack,
     "Wildcard Subscription Available"},
    {PropertyId::kSubscriptionIdentifierAvailable, PropertyType::kByte, kCtxConnack,
     "Subscription Identifier Available"},
    {PropertyId::kSharedSubscriptionAvailable, PropertyType::kByte, kCtxConnack,
     "Shared Subscription Available"},
};

constexpr std::array<int8_t, 64> BuildIndex() {
  std::array<int8_t, 64> index{};
  for (auto& i : index) i = -1;
  for (size_t i = 0; i < std::size(kPropertyTable); ++i) {
    index[static_cast<uint8_t>(kPropertyTable[i].id)] = static_cast<int8_t>(i);
  }
  return index;
}
constexpr std::array<int8_t, 64> kPropertyIndex = BuildIndex();

PropertyError Malformed(const char* what) { return {ReasonCode::kMalformedPacket, what}; }
PropertyError ProtocolError(const char* what) { return {ReasonCode::kProtocolError, what}; }

// Stores a single-valued property, rejecting repetition (Protocol Error; each
// property's section says "It is a Protocol Error to include ... more than
// once").
template <class T, class V>
bool SetOnce(std::optional<T>& field, V value) {
  if (field.has_value()) return false;
  field = static_cast<T>(value);
  return true;
}

// Writes all present properties, in identifier order, into `sink`.
template <class Sink>
void WriteProperties(const Properties& p, Sink& s) {
  auto byte = [&](PropertyId id, const std::optional<uint8_t>& v) {
    if (v) {
      s.U8(static_cast<uint8_t>(id));
      s.U8(*v);
    }
  };
  auto u16 = [&](PropertyId id, const std::optional<uint16_t>& v) {
    if (v) {
      s.U8(static_cast<uint8_t>(id));
      s.U16(*v);
    }
  };
  auto u32 = [&](PropertyId id, const std::optional<uint32_t>& v) {
    if (v) {
      s.U8(static_cast<uint8_t>(id));
      s.U32(*v);
    }
  };
  auto str = [&](PropertyId id, const std::optional<std::string_view>& v) {
    if (v) {
      s.U8(static_cast<uint8_t>(id));
      s.Str(*v);
    }
  };
  auto bin = [&](PropertyId id, const std::optional<absl::Span<const uint8_t>>& v) {
    if (v) {
      s.U8(static_cast<uint8_t>(id));
      s.Bin(*v);
    }
  };
  byte(PropertyId::kPayloadFormatIndicator, p.payload_format_indicator);
  u32(PropertyId::kMessageExpiryInterval, p.message_expiry_interval);
  str(PropertyId::kContentType, p.content_type);
  str(PropertyId::kResponseTopic, p.response_topic);
  bin(PropertyId::kCorrelationData, p.correlation_data);
  for (uint32_t id : p.subscription_identifiers) {
    s.U8(static_cast<uint8_t>(PropertyId::kSubscriptionIdentifier));
    s.Varint(id);
  }
  u32(PropertyId::kSessionExpiryInterval, p.session_expiry_interval);
  str(PropertyId::kAssignedClientIdentifier, p.assigned_client_identifier);
  u16(PropertyId::kServerKeepAlive, p.server_keep_alive);
  str(PropertyId::kAuthenticationMethod, p.authentication_method);
  bin(PropertyId::kAuthenticationData, p.authentication_data);
  byte(PropertyId::kRequestProblemInformation, p.request_problem_information);
  u32(PropertyId::kWillDelayInterval, p.will_delay_interval);
  byte(PropertyId::kRequestResponseInformation, p.request_response_information);
  str(PropertyId::kResponseInformation, p.response_information);
  str(PropertyId::kServerReference, p.server_reference);
  str(PropertyId::kReasonString, p.reason_string);
  u16(PropertyId::kReceiveMaximum, p.receive_maximum);
  u16(PropertyId::kTopicAliasMaximum, p.topic_alias_maximum);
  u16(PropertyId::kTopicAlias, p.topic_alias);
  byte(PropertyId::kMaximumQos, p.maximum_qos);
  byte(PropertyId::kRetainAvailable, p.retain_available);
  for (const auto& [key, value] : p.user_properties) {
    s.U8(static_cast<uint8_t>(PropertyId::kUserProperty));
    s.Str(key);
    s.Str(value);
  }
  u32(PropertyId::kMaximumPacketSize, p.maximum_packet_size);
  byte(PropertyId::kWildcardSubscriptionAvailable, p.wildcard_subscription_available);
  byte(PropertyId::kSubscriptionIdentifierAvailable, p.subscription_identifier_available);
  byte(PropertyId::kSharedSubscriptionAvailable, p.shared_subscription_available);
}

}  // namespace

const PropertyInfo* FindPropertyInfo(uint8_t id) {
  if (id >= kPropertyIndex.size() || kPropertyIndex[id] < 0) return nullptr;
  return &kPropertyTable[kPropertyIndex[id]];
}

PropertyError DecodeProperties(absl::Span<const uint8_t> data, PropertyContext ctx,
                               Properties* out) {
  Reader r(data);
  while (!r.empty()) {
    // The identifier is a Variable Byte Integer, but all defined ones fit in
    // one byte; a multi-byte identifier is unknown, hence Malformed.
    uint32_t raw_id;
    if (!r.Varint(&raw_id)) return Malformed("bad property identifier");
    const PropertyInfo* info =
        raw_id < 64 ? FindPropertyInfo(static_cast<uint8_t>(raw_id)) : nullptr;
    // 2.2.2.2: an identifier not valid for the packet type is Malformed.
    if (info == nullptr) return Malformed("unknown property identifier");
    if ((info->contexts & ctx) == 0) return Malformed("property not allowed in this packet");

    uint8_t b = 0;
    uint16_t u16 = 0;
    uint32_t u32 = 0;
    std::string_view str;
    std::string_view str2;
    absl::Span<const uint8_t> bin;
    switch (info->type) {
      case PropertyType::kByte:
        if (!r.U8(&b)) return Malformed("truncated property");
        break;
      case PropertyType::kTwoByteInteger:
        if (!r.U16(&u16)) return Malformed("truncated property");
        break;
      case PropertyType::kFourByteInteger:
        if (!r.U32(&u32)) return Malformed("truncated property");
        break;
      case PropertyType::kVariableByteInteger:
        if (!r.Varint(&u32)) return Malformed("bad variable byte integer property");
        break;
      case PropertyType::kUtf8String:
        if (!r.RawString(&str)) return Malformed("truncated property");
        if (!IsValidMqttUtf8(str)) return Malformed("property string is not valid UTF-8");
        break;
      case PropertyType::kBinaryData:
        if (!r.Binary(&bin)) return Malformed("truncated property");
        break;
      case PropertyType::kUtf8StringPair:
        if (!r.RawString(&str) || !r.RawString(&str2)) return Malformed("truncated property");
        if (!IsValidMqttUtf8(str) || !IsValidMqttUtf8(str2)) {
          return Malformed("user property is not valid UTF-8");
        }
        break;
    }

    bool fresh = true;
    switch (info->id) {
      case PropertyId::kPayloadFormatIndicator:
        if (b > 1) return ProtocolError("Payload Format Indicator must be 0 or 1");
        fresh = SetOnce(out->payload_format_indicator, b);
        break;
      case PropertyId::kMessageExpiryInterval:
        fresh = SetOnce(out->message_expiry_interval, u32);
        break;
      case PropertyId::kContentType:
        fresh = SetOnce(out->content_type, str);
        break;
      case PropertyId::kResponseTopic:
        // 3.3.2.3.5: the Response Topic is a Topic Name, so no wildcards.
        if (ValidateTopicName(str) != TopicError::kOk) {
          return ProtocolError("Response Topic must be a valid topic name");
        }
        fresh = SetOnce(out->response_topic, str);
        break;
      case PropertyId::kCorrelationData:
        fresh = SetOnce(out->correlation_data, bin);
        break;
      case PropertyId::kSubscriptionIdentifier:
        // 3.3.2.3.8 / 3.8.2.1.2: "It is a Protocol Error if the Subscription
        // Identifier has a value of 0"; it may repeat only in PUBLISH.
        if (u32 == 0) return ProtocolError("Subscription Identifier 0");
        if (ctx != kCtxPublish && !out->subscription_identifiers.empty()) fresh = false;
        if (fresh) out->subscription_identifiers.push_back(u32);
        break;
      case PropertyId::kSessionExpiryInterval:
        fresh = SetOnce(out->session_expiry_interval, u32);
        break;
      case PropertyId::kAssignedClientIdentifier:
        fresh = SetOnce(out->assigned_client_identifier, str);
        break;
      case PropertyId::kServerKeepAlive:
        fresh = SetOnce(out->server_keep_alive, u16);
        break;
      case PropertyId::kAuthenticationMethod:
        fresh = SetOnce(out->authentication_method, str);
        break;
      case PropertyId::kAuthenticationData:
        fresh = SetOnce(out->authentication_data, bin);
        break;
      case PropertyId::kRequestProblemInformation:
        if (b > 1) return ProtocolError("Request Problem Information must be 0 or 1");
        fresh = SetOnce(out->request_problem_information, b);
        break;
      case PropertyId::kWillDelayInterval:
        fresh = SetOnce(out->will_delay_interval, u32);
        break;
      case PropertyId::kRequestResponseInformation:
        if (b > 1) return ProtocolError("Request Response Information must be 0 or 1");
        fresh = SetOnce(out->request_response_information, b);
        break;
      case PropertyId::kResponseInformation:
        fresh = SetOnce(out->response_information, str);
        break;
      case PropertyId::kServerReference:
        fresh = SetOnce(out->server_reference, str);
        break;
      case PropertyId::kReasonString:
        fresh = SetOnce(out->reason_string, str);
        break;
      case PropertyId::kReceiveMaximum:
        if (u16 == 0) return ProtocolError("Receive Maximum 0");
        fresh = SetOnce(out->receive_maximum, u16);
        break;
      case PropertyId::kTopicAliasMaximum:
        fresh = SetOnce(out->topic_alias_maximum, u16);
        break;
      case PropertyId::kTopicAlias:
        // [MQTT-3.3.2-8]: a Topic Alias of 0 is not permitted; the receiver
        // answers "Topic Alias invalid" (3.3.2.3.4).
        if (u16 == 0) return {ReasonCode::kTopicAliasInvalid, "Topic Alias 0"};
        fresh = SetOnce(out->topic_alias, u16);
        break;
      case PropertyId::kMaximumQos:
        if (b > 1) return ProtocolError("Maximum QoS must be 0 or 1");
        fresh = SetOnce(out->maximum_qos, b);
        break;
      case PropertyId::kRetainAvailable:
        if (b > 1) return ProtocolError("Retain Available must be 0 or 1");
        fresh = SetOnce(out->retain_available, b);
        break;
      case PropertyId::kUserProperty:
        out->user_properties.emplace_back(str, str2);
        break;
      case PropertyId::kMaximumPacketSize:
        if (u32 == 0) return ProtocolError("Maximum Packet Size 0");
        fresh = SetOnce(out->maximum_packet_size, u32);
        break;
      case PropertyId::kWildcardSubscriptionAvailable:
        if (b > 1) return ProtocolError("Wildcard Subscription Available must be 0 or 1");
        fresh = SetOnce(out->wildcard_subscription_available, b);
        break;
      case PropertyId::kSubscriptionIdentifierAvailable:
        if (b > 1) return ProtocolError("Subscription Identifier Available must be 0 or 1");
        fresh = SetOnce(out->subscription_identifier_available, b);
        break;
      case PropertyId::kSharedSubscriptionAvailable:
        if (b > 1) return ProtocolError("Shared Subscription Available must be 0 or 1");
        fresh = SetOnce(out->shared_subscription_available, b);
        break;
    }
    if (!fresh) return ProtocolError("property included more than once");
  }
  // 3.1.2.11.10, 3.2.2.3.18, 3.15.2.2.3: "It is a Protocol Error to include
  // Authentication Data if there is no Authentication Method."
  if (out->authentication_data && !out->authentication_method) {
    return ProtocolError("Authentication Data without Authentication Method");
  }
  return {};
}

size_t PropertiesBodySize(const Properties& props) {
  internal::SizeSink s;
  WriteProperties(props, s);
  return s.n;
}

size_t PropertiesSize(const Properties& props) {
  const size_t body = PropertiesBodySize(props);
  return VarintSize(static_cast<uint32_t>(body)) + body;
}

size_t EncodeProperties(const Properties& props, size_t body_size, uint8_t* out) {
  internal::WriteSink s{out};
  s.Varint(static_cast<uint32_t>(body_size));
  WriteProperties(props, s);
  return static_cast<size_t>(s.p - out);
}

}  // namespace shardmq::mqtt
