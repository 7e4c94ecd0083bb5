// Every rejection the decoder makes, one case per normative statement where
// the specification has one, each asserting the reason code a client would
// see (Malformed Packet vs Protocol Error vs Packet too large vs
// Unsupported Protocol Version ...).
#include "mqtt/decoder.h"

#include <string>
#include <vector>

#include "bytes_builder.h"
#include "gtest/gtest.h"

namespace shardmq::mqtt {
namespace {

using testing::Bytes;
using testing::Pkt;

constexpr auto V31 = ProtocolVersion::kV31;
constexpr auto V311 = ProtocolVersion::kV311;
constexpr auto V5 = ProtocolVersion::kV5;
constexpr auto Unknown = ProtocolVersion::kUnknown;
constexpr auto kMalformed = ReasonCode::kMalformedPacket;
constexpr auto kProtocol = ReasonCode::kProtocolError;

struct BadCase {
  std::string name;
  ProtocolVersion version;  // Connection version (Unknown for CONNECT).
  std::vector<uint8_t> bytes;
  ReasonCode reason;
  uint32_t max_packet_size = kMaxPacketSizeLimit;
  bool validate_utf8_payload = false;
};

// CONNECT 3.1.1 with the given flags and payload.
std::vector<uint8_t> Connect311(uint8_t flags, const Bytes& payload) {
  return Pkt(0x10, Bytes().Str("MQTT").U8(4).U8(flags).U16(60).Append(payload));
}
// CONNECT 5.0 with the given flags, properties and payload.
std::vector<uint8_t> Connect5(uint8_t flags, const Bytes& props, const Bytes& payload) {
  return Pkt(0x10, Bytes().Str("MQTT").U8(5).U8(flags).U16(60).Props(props).Append(payload));
}
// PUBLISH 5.0 QoS 0 to "t" with the given properties.
std::vector<uint8_t> Publish5(const Bytes& props) {
  return Pkt(0x30, Bytes().Str("t").Props(props).Raw({'x'}));
}
// SUBSCRIBE 5.0 with one filter.
std::vector<uint8_t> Subscribe5(std::string_view filter, uint8_t opts, const Bytes& props = {}) {
  return Pkt(0x82, Bytes().U16(1).Props(props).Str(filter).U8(opts));
}
std::vector<uint8_t> Subscribe311(std::string_view filter, uint8_t opts) {
  return Pkt(0x82, Bytes().U16(1).Str(filter).U8(opts));
}
std::vector<uint8_t> Connack5(const Bytes& props, uint8_t flags = 0, uint8_t code = 0) {
  return Pkt(0x20, Bytes().U8(flags).U8(code).Props(props));
}

std::vector<BadCase> Cases() {
  std::vector<BadCase> c;
  auto add = [&](std::string name, ProtocolVersion v, std::vector<uint8_t> bytes, ReasonCode r) {
    c.push_back({std::move(name), v, std::move(bytes), r});
  };
  const Bytes cid = Bytes().Str("c");

  // Fixed header.
  add("MQTT_2_2_ReservedPacketType0", V311, {0x00, 0x00}, kMalformed);
  add("ReservedPacketType15Before5", V311, {0xF0, 0x00}, kMalformed);
  add("ReservedPacketType15In31", V31, {0xF0, 0x00}, kMalformed);
  add("MQTT_3_6_1_1_PubrelFlags", V311, {0x60, 0x02, 0x00, 0x01}, kMalformed);
  add("MQTT_3_8_1_1_SubscribeFlags", V311, Pkt(0x80, Bytes().U16(1).Str("a").U8(0)), kMalformed);
  add("MQTT_3_10_1_1_UnsubscribeFlags", V5, Pkt(0xA3, Bytes().U16(1).Props({}).Str("a")),
      kMalformed);
  add("MQTT_2_2_2_2_PubackFlags", V311, {0x41, 0x02, 0x00, 0x01}, kMalformed);
  add("MQTT_2_2_2_2_PingreqFlags", V311, {0xC1, 0x00}, kMalformed);
  add("MQTT_2_2_2_2_DisconnectFlags", V5, {0xE2, 0x00}, kMalformed);
  add("MQTT_2_2_2_2_ConnectFlags", Unknown, {0x18, 0x00}, kMalformed);
  add("MQTT_3_3_1_4_PublishQos3", V311, Pkt(0x36, Bytes().Str("t").U16(1)), kMalformed);
  add("MQTT_3_3_1_2_PublishDupWithQos0", V311, Pkt(0x38, Bytes().Str("t")), kMalformed);
  add("MQTT_1_5_5_RemainingLengthFiveBytes", V311, {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01},
      kMalformed);
  add("MQTT_1_5_5_1_RemainingLengthNotMinimal", V311, {0xC0, 0x80, 0x00}, kMalformed);
  add("MQTT_3_1_0_1_FirstPacketNotConnect", Unknown, {0xC0, 0x00}, kProtocol);
  add("MQTT_3_1_0_1_PublishBeforeConnect", Unknown, Pkt(0x30, Bytes().Str("t")), kProtocol);
  add("PingreqWithBody", V311, {0xC0, 0x01, 0x00}, kMalformed);
  add("PingrespWithBody", V5, {0xD0, 0x01, 0x00}, kMalformed);
  add("Disconnect311WithBody", V311, {0xE0, 0x01, 0x00}, kMalformed);

  // CONNECT.
  add("MQTT_3_1_2_1_WrongProtocolName", Unknown,
      Pkt(0x10, Bytes().Str("MQTX").U8(4).U8(2).U16(60).Str("c")),
      ReasonCode::kUnsupportedProtocolVersion);
  add("MQTT_3_1_2_2_UnsupportedLevel", Unknown,
      Pkt(0x10, Bytes().Str("MQTT").U8(6).U8(2).U16(60).Str("c")),
      ReasonCode::kUnsupportedProtocolVersion);
  add("ProtocolNameLevelMismatch", Unknown,
      Pkt(0x10, Bytes().Str("MQIsdp").U8(4).U8(2).U16(60).Str("c")),
      ReasonCode::kUnsupportedProtocolVersion);
  add("BridgeBitOnLevel5", Unknown, Pkt(0x10, Bytes().Str("MQTT").U8(0x85).U8(2).U16(60).Str("c")),
      ReasonCode::kUnsupportedProtocolVersion);
  add("ConnectTruncatedProtocolName", Unknown, Pkt(0x10, Bytes().U16(4).Raw({'M', 'Q'})),
      kMalformed);
  add("MQTT_3_1_2_3_ConnectReservedFlag", Unknown, Connect311(0x03, cid), kMalformed);
  add("MQTT_3_1_2_3_ConnectReservedFlag5", Unknown, Connect5(0x03, {}, cid), kMalformed);
  add("MQTT_3_1_2_13_WillQosWithoutWillFlag", Unknown, Connect311(0x0A, cid), kMalformed);
  add("MQTT_3_1_2_14_WillQos3", Unknown, Connect311(0x1E, Bytes().Str("c").Str("w").Str("p")),
      kMalformed);
  add("MQTT_3_1_2_15_WillRetainWithoutWillFlag", Unknown, Connect311(0x22, cid), kMalformed);
  add("MQTT_3_1_2_11_WillQosWithoutWillFlag5", Unknown, Connect5(0x12, {}, cid), kMalformed);
  add("MQTT_3_1_2_22_PasswordWithoutUserName", Unknown,
      Connect311(0x42, Bytes().Str("c").Str("pw")), kProtocol);
  add("MQTT_3_1_3_8_EmptyClientIdWithoutCleanSession", Unknown, Connect311(0x00, Bytes().Str("")),
      ReasonCode::kClientIdentifierNotValid);
  add("EmptyClientId31", Unknown, Pkt(0x10, Bytes().Str("MQIsdp").U8(3).U8(2).U16(60).Str("")),
      ReasonCode::kClientIdentifierNotValid);
  add("MQTT_1_5_4_1_ClientIdOverlong", Unknown, Connect311(0x02, Bytes().U16(2).Raw({0xC0, 0x80})),
      kMalformed);
  add("MQTT_1_5_4_1_ClientIdSurrogate", Unknown,
      Connect311(0x02, Bytes().U16(3).Raw({0xED, 0xA0, 0x80})), kMalformed);
  add("MQTT_1_5_4_2_ClientIdNul", Unknown, Connect311(0x02, Bytes().U16(2).Raw({'a', 0x00})),
      kMalformed);
  add("MQTT_1_5_4_1_UserNameInvalidUtf8", Unknown,
      Connect311(0x82, Bytes().Str("c").U16(1).Raw({0xFF})), kMalformed);
  add("ConnectTrailingBytes", Unknown, Connect311(0x02, Bytes().Str("c").U8(0)), kMalformed);
  add("ConnectMissingUserName", Unknown, Connect311(0x82, cid), kMalformed);
  add("ConnectMissingPassword", Unknown, Connect311(0xC2, Bytes().Str("c").Str("u")), kMalformed);
  add("ConnectMissingWill", Unknown, Connect311(0x06, cid), kMalformed);
  add("ConnectTruncatedKeepAlive", Unknown, Pkt(0x10, Bytes().Str("MQTT").U8(4).U8(2).U8(0)),
      kMalformed);
  add("MQTT_3_1_3_WillTopicWildcard", Unknown,
      Connect311(0x06, Bytes().Str("c").Str("a/#").Str("p")), ReasonCode::kTopicNameInvalid);
  add("WillTopicEmpty", Unknown, Connect311(0x06, Bytes().Str("c").Str("").Str("p")),
      ReasonCode::kTopicNameInvalid);
  add("ConnectPropertyNotAllowed_TopicAlias", Unknown, Connect5(0x02, Bytes().U8(0x23).U16(1), cid),
      kMalformed);
  add("ConnectUnknownProperty", Unknown, Connect5(0x02, Bytes().U8(0x7F).U8(0), cid), kMalformed);
  add("ConnectPropertyNotAllowed_WillDelay", Unknown, Connect5(0x02, Bytes().U8(0x18).U32(1), cid),
      kMalformed);
  add("ConnectReceiveMaximumZero", Unknown, Connect5(0x02, Bytes().U8(0x21).U16(0), cid),
      kProtocol);
  add("ConnectMaximumPacketSizeZero", Unknown, Connect5(0x02, Bytes().U8(0x27).U32(0), cid),
      kProtocol);
  add("ConnectSessionExpiryTwice", Unknown,
      Connect5(0x02, Bytes().U8(0x11).U32(1).U8(0x11).U32(2), cid), kProtocol);
  add("ConnectRequestProblemInformation2", Unknown, Connect5(0x02, Bytes().U8(0x17).U8(2), cid),
      kProtocol);
  add("ConnectRequestResponseInformation2", Unknown, Connect5(0x02, Bytes().U8(0x19).U8(2), cid),
      kProtocol);
  add("ConnectAuthenticationDataWithoutMethod", Unknown,
      Connect5(0x02, Bytes().U8(0x16).U16(1).U8(9), cid), kProtocol);
  add("ConnectAuthenticationMethodTwice", Unknown,
      Connect5(0x02, Bytes().U8(0x15).Str("a").U8(0x15).Str("b"), cid), kProtocol);
  add("ConnectPropertyLengthBeyondPacket", Unknown,
      Pkt(0x10, Bytes().Str("MQTT").U8(5).U8(2).U16(60).Varint(50).Str("c")), kMalformed);
  add("ConnectPropertyTruncated", Unknown,
      Pkt(0x10, Bytes().Str("MQTT").U8(5).U8(2).U16(60).Varint(3).U8(0x11).U16(0).Str("c")),
      kMalformed);
  add("ConnectUserPropertyInvalidUtf8", Unknown,
      Connect5(0x02, Bytes().U8(0x26).Str("k").U16(1).Raw({0xC3}), cid), kMalformed);
  add("WillPropertyNotAllowed_SessionExpiry", Unknown,
      Connect5(0x06, {}, Bytes().Str("c").Props(Bytes().U8(0x11).U32(1)).Str("w").Str("p")),
      kMalformed);
  add("WillPayloadFormatIndicator2", Unknown,
      Connect5(0x06, {}, Bytes().Str("c").Props(Bytes().U8(0x01).U8(2)).Str("w").Str("p")),
      kProtocol);
  add("WillDelayIntervalTwice", Unknown,
      Connect5(0x06, {},
               Bytes().Str("c").Props(Bytes().U8(0x18).U32(1).U8(0x18).U32(1)).Str("w").Str("p")),
      kProtocol);

  // PUBLISH.
  add("MQTT_3_3_2_2_TopicWithPlus", V311, Pkt(0x30, Bytes().Str("a/+")),
      ReasonCode::kTopicNameInvalid);
  add("MQTT_3_3_2_2_TopicWithHash", V5, Pkt(0x30, Bytes().Str("a/#").Props({})),
      ReasonCode::kTopicNameInvalid);
  add("MQTT_4_7_3_1_EmptyTopic311", V311, Pkt(0x30, Bytes().Str("")),
      ReasonCode::kTopicNameInvalid);
  add("EmptyTopicWithoutTopicAlias5", V5, Pkt(0x30, Bytes().Str("").Props({})), kProtocol);
  add("MQTT_2_2_1_3_PublishQos1PacketId0", V311, Pkt(0x32, Bytes().Str("t").U16(0)), kProtocol);
  add("MQTT_2_2_1_3_PublishQos2PacketId0", V5, Pkt(0x34, Bytes().Str("t").U16(0).Props({})),
      kProtocol);
  add("PublishTruncatedTopic", V311, Pkt(0x30, Bytes().U16(5).Raw({'a'})), kMalformed);
  add("PublishMissingPacketId", V311, Pkt(0x32, Bytes().Str("t")), kMalformed);
  add("MQTT_1_5_4_1_PublishTopicInvalidUtf8", V311, Pkt(0x30, Bytes().U16(2).Raw({0xE0, 0x80})),
      kMalformed);
  add("MQTT_1_5_4_2_PublishTopicNul", V5, Pkt(0x30, Bytes().U16(1).U8(0).Props({})), kMalformed);
  add("MQTT_3_3_2_8_TopicAliasZero", V5, Publish5(Bytes().U8(0x23).U16(0)),
      ReasonCode::kTopicAliasInvalid);
  add("PayloadFormatIndicator2", V5, Publish5(Bytes().U8(0x01).U8(2)), kProtocol);
  add("PublishSubscriptionIdentifierZero", V5, Publish5(Bytes().U8(0x0B).U8(0)), kProtocol);
  add("PublishTopicAliasTwice", V5, Publish5(Bytes().U8(0x23).U16(1).U8(0x23).U16(2)), kProtocol);
  add("PublishMessageExpiryTwice", V5, Publish5(Bytes().U8(0x02).U32(1).U8(0x02).U32(1)),
      kProtocol);
  add("PublishContentTypeTwice", V5, Publish5(Bytes().U8(0x03).Str("a").U8(0x03).Str("a")),
      kProtocol);
  add("PublishPropertyNotAllowed_SessionExpiry", V5, Publish5(Bytes().U8(0x11).U32(1)), kMalformed);
  add("PublishPropertyNotAllowed_ReasonString", V5, Publish5(Bytes().U8(0x1F).Str("r")),
      kMalformed);
  add("PublishResponseTopicWildcard", V5, Publish5(Bytes().U8(0x08).Str("r/#")), kProtocol);
  add("PublishCorrelationDataTruncated", V5, Pkt(0x30, Bytes().Str("t").Varint(3).U8(0x09).U16(5)),
      kMalformed);
  add("PublishSubscriptionIdentifierFiveBytes", V5,
      Publish5(Bytes().U8(0x0B).Raw({0xFF, 0xFF, 0xFF, 0xFF, 0x01})), kMalformed);

  // PUBACK, PUBREC, PUBREL, PUBCOMP.
  add("MQTT_2_2_1_3_PubackPacketId0", V311, {0x40, 0x02, 0x00, 0x00}, kProtocol);
  add("MQTT_2_2_1_3_PubrelPacketId0", V5, {0x62, 0x02, 0x00, 0x00}, kProtocol);
  add("Puback311Trailing", V311, {0x40, 0x03, 0x00, 0x01, 0x00}, kMalformed);
  add("PubrecTruncated", V311, {0x50, 0x01, 0x00}, kMalformed);
  add("PubackInvalidReasonCode", V5, {0x40, 0x03, 0x00, 0x01, 0x05}, kProtocol);
  add("PubcompReasonNotAllowed", V5, {0x70, 0x03, 0x00, 0x01, 0x10}, kProtocol);
  add("PubackReasonStringTwice", V5,
      Pkt(0x40, Bytes().U16(1).U8(0).Props(Bytes().U8(0x1F).Str("a").U8(0x1F).Str("b"))),
      kProtocol);
  add("PubackPropertyNotAllowed_TopicAlias", V5,
      Pkt(0x40, Bytes().U16(1).U8(0).Props(Bytes().U8(0x23).U16(1))), kMalformed);
  add("PubackTrailingAfterProperties", V5, Pkt(0x40, Bytes().U16(1).U8(0).Props({}).U8(0)),
      kMalformed);

  // SUBSCRIBE.
  add("MQTT_3_8_3_3_SubscribeWithoutFilters", V311, Pkt(0x82, Bytes().U16(1)), kProtocol);
  add("MQTT_3_8_3_3_SubscribeWithoutFilters5", V5, Pkt(0x82, Bytes().U16(1).Props({})), kProtocol);
  add("MQTT_2_2_1_3_SubscribePacketId0", V311, Pkt(0x82, Bytes().U16(0).Str("a").U8(0)), kProtocol);
  add("MQTT_3_8_3_4_SubscribeReservedBits311", V311, Subscribe311("a", 0x04), kMalformed);
  add("MQTT_3_8_3_4_SubscribeQos3_311", V311, Subscribe311("a", 0x03), kMalformed);
  add("MQTT_3_8_3_5_SubscribeReservedBits5", V5, Subscribe5("a", 0x40), kMalformed);
  add("SubscribeQos3_5", V5, Subscribe5("a", 0x03), kProtocol);
  add("SubscribeRetainHandling3", V5, Subscribe5("a", 0x30), kProtocol);
  add("MQTT_3_8_3_4_NoLocalOnSharedSubscription", V5, Subscribe5("$share/g/a", 0x04), kProtocol);
  add("MQTT_4_8_2_1_SharedEmptyGroup", V5, Subscribe5("$share//a", 0x00),
      ReasonCode::kTopicFilterInvalid);
  add("MQTT_4_8_2_2_SharedGroupWildcard", V5, Subscribe5("$share/g+/a", 0x00),
      ReasonCode::kTopicFilterInvalid);
  add("SharedWithoutFilter", V5, Subscribe5("$share/g", 0x00), ReasonCode::kTopicFilterInvalid);
  add("MQTT_4_7_1_2_PlusNotWholeLevel", V311, Subscribe311("a/b+", 0),
      ReasonCode::kTopicFilterInvalid);
  add("MQTT_4_7_1_1_HashNotLast", V5, Subscribe5("a/#/b", 0), ReasonCode::kTopicFilterInvalid);
  add("MQTT_4_7_3_1_EmptyFilter", V311, Subscribe311("", 0), ReasonCode::kTopicFilterInvalid);
  add("SubscribeMissingOptions", V311, Pkt(0x82, Bytes().U16(1).Str("a")), kMalformed);
  add("SubscribeFilterInvalidUtf8", V311, Pkt(0x82, Bytes().U16(1).U16(1).U8(0x80).U8(0)),
      kMalformed);
  add("SubscribeSubscriptionIdentifierTwice", V5,
      Subscribe5("a", 0, Bytes().U8(0x0B).U8(1).U8(0x0B).U8(2)), kProtocol);
  add("SubscribeSubscriptionIdentifierZero", V5, Subscribe5("a", 0, Bytes().U8(0x0B).U8(0)),
      kProtocol);
  add("SubscribePropertyNotAllowed_ReasonString", V5, Subscribe5("a", 0, Bytes().U8(0x1F).Str("r")),
      kMalformed);

  // UNSUBSCRIBE.
  add("MQTT_3_10_3_2_UnsubscribeWithoutFilters", V311, Pkt(0xA2, Bytes().U16(1)), kProtocol);
  add("MQTT_3_10_3_2_UnsubscribeWithoutFilters5", V5, Pkt(0xA2, Bytes().U16(1).Props({})),
      kProtocol);
  add("MQTT_2_2_1_3_UnsubscribePacketId0", V311, Pkt(0xA2, Bytes().U16(0).Str("a")), kProtocol);
  add("UnsubscribeInvalidFilter", V311, Pkt(0xA2, Bytes().U16(1).Str("a#")),
      ReasonCode::kTopicFilterInvalid);
  add("UnsubscribeInvalidSharedFilter", V5, Pkt(0xA2, Bytes().U16(1).Props({}).Str("$share//x")),
      ReasonCode::kTopicFilterInvalid);

  // CONNACK.
  add("MQTT_3_2_2_1_ConnackReservedFlags", V311, {0x20, 0x02, 0x02, 0x00}, kMalformed);
  add("ConnackReturnCode6", V311, {0x20, 0x02, 0x00, 0x06}, kProtocol);
  add("MQTT_3_2_2_4_SessionPresentWithRefusal", V311, {0x20, 0x02, 0x01, 0x05}, kProtocol);
  add("Connack311Trailing", V311, {0x20, 0x03, 0x00, 0x00, 0x00}, kMalformed);
  add("ConnackTruncated", V311, {0x20, 0x01, 0x00}, kMalformed);
  add("ConnackInvalidReasonCode", V5, Connack5({}, 0, 0x01), kProtocol);
  add("MQTT_3_2_2_6_SessionPresentWithError", V5, Connack5({}, 1, 0x80), kProtocol);
  add("ConnackMaximumQos2", V5, Connack5(Bytes().U8(0x24).U8(2)), kProtocol);
  add("ConnackRetainAvailable2", V5, Connack5(Bytes().U8(0x25).U8(2)), kProtocol);
  add("ConnackWildcardSubscriptionAvailable2", V5, Connack5(Bytes().U8(0x28).U8(2)), kProtocol);
  add("ConnackSubscriptionIdentifierAvailable2", V5, Connack5(Bytes().U8(0x29).U8(2)), kProtocol);
  add("ConnackSharedSubscriptionAvailable2", V5, Connack5(Bytes().U8(0x2A).U8(2)), kProtocol);
  add("ConnackReceiveMaximumZero", V5, Connack5(Bytes().U8(0x21).U16(0)), kProtocol);
  add("ConnackServerKeepAliveTwice", V5, Connack5(Bytes().U8(0x13).U16(1).U8(0x13).U16(1)),
      kProtocol);
  add("ConnackPropertyNotAllowed_WillDelay", V5, Connack5(Bytes().U8(0x18).U32(1)), kMalformed);
  add("Connack5MissingPropertyLength", V5, {0x20, 0x02, 0x00, 0x00}, kMalformed);

  // SUBACK, UNSUBACK.
  add("MQTT_3_9_3_2_SubackInvalidReturnCode", V311, {0x90, 0x03, 0x00, 0x01, 0x03}, kProtocol);
  add("SubackInvalidReasonCode5", V5, {0x90, 0x04, 0x00, 0x01, 0x00, 0x11}, kProtocol);
  add("SubackWithoutCodes", V311, {0x90, 0x02, 0x00, 0x01}, kProtocol);
  add("Unsuback311Trailing", V311, {0xB0, 0x03, 0x00, 0x01, 0x00}, kMalformed);
  add("UnsubackInvalidReasonCode5", V5, {0xB0, 0x04, 0x00, 0x01, 0x00, 0x01}, kProtocol);
  add("UnsubackWithoutCodes5", V5, {0xB0, 0x03, 0x00, 0x01, 0x00}, kProtocol);

  // DISCONNECT, AUTH.
  add("DisconnectInvalidReasonCode", V5, {0xE0, 0x01, 0x01}, kProtocol);
  add("DisconnectPropertyNotAllowed_TopicAlias", V5,
      Pkt(0xE0, Bytes().U8(0).Props(Bytes().U8(0x23).U16(1))), kMalformed);
  add("DisconnectTrailingAfterProperties", V5, Pkt(0xE0, Bytes().U8(0).Props({}).U8(0)),
      kMalformed);
  add("DisconnectSessionExpiryTwice", V5,
      Pkt(0xE0, Bytes().U8(0).Props(Bytes().U8(0x11).U32(0).U8(0x11).U32(0))), kProtocol);
  add("AuthInvalidReasonCode", V5, {0xF0, 0x01, 0x01}, kProtocol);
  add("AuthDataWithoutMethod", V5, Pkt(0xF0, Bytes().U8(0x18).Props(Bytes().U8(0x16).U16(0))),
      kProtocol);
  add("AuthUserPropertyTruncated", V5, Pkt(0xF0, Bytes().U8(0x18).Props(Bytes().U8(0x26).Str("k"))),
      kMalformed);

  // Maximum packet size and optional payload UTF-8 validation.
  c.push_back({"PacketTooLarge311", V311, Pkt(0x30, Bytes().Str("t").Raw({1, 2, 3, 4, 5, 6})),
               ReasonCode::kPacketTooLarge, 10});
  c.push_back({"PacketTooLarge5", V5, Pkt(0x30, Bytes().Str("t").Props({}).Raw({1, 2, 3, 4, 5})),
               ReasonCode::kPacketTooLarge, 10});
  c.push_back({"PacketTooLargeConnect", Unknown, Connect311(0x02, Bytes().Str("client")),
               ReasonCode::kPacketTooLarge, 10});
  c.push_back({"PayloadFormatInvalid", V5,
               Pkt(0x30, Bytes().Str("t").Props(Bytes().U8(0x01).U8(1)).Raw({0xC3, 0x28})),
               ReasonCode::kPayloadFormatInvalid, kMaxPacketSizeLimit, true});
  c.push_back(
      {"WillPayloadFormatInvalid", Unknown,
       Connect5(0x06, {}, Bytes().Str("c").Props(Bytes().U8(0x01).U8(1)).Str("w").U16(1).U8(0xFF)),
       ReasonCode::kPayloadFormatInvalid, kMaxPacketSizeLimit, true});
  return c;
}

class MalformedTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(MalformedTest, RejectedWithSpecReasonCode) {
  const BadCase& bc = GetParam();
  DecodeOptions o;
  o.version = bc.version;
  o.max_packet_size = bc.max_packet_size;
  o.validate_utf8_payload = bc.validate_utf8_payload;
  Packet p;
  const DecodeResult r = DecodePacket(bc.bytes, o, &p);
  ASSERT_EQ(r.status, DecodeStatus::kError);
  EXPECT_EQ(r.reason, bc.reason) << "got " << ReasonCodeName(r.reason) << ": " << r.what;
  EXPECT_NE(r.what, nullptr);
  EXPECT_GT(r.consumed, 0u);
  EXPECT_LE(r.consumed, bc.bytes.size());
}

INSTANTIATE_TEST_SUITE_P(Spec, MalformedTest, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return info.param.name; });

// Packet too large is reported from the fixed header alone, before the body
// arrives, so the broker can close early.
TEST(PacketTooLargeTest, DetectedFromFixedHeaderAlone) {
  DecodeOptions o{.version = ProtocolVersion::kV5, .max_packet_size = 1024};
  Packet p;
  const std::vector<uint8_t> header = {0x30, 0x80, 0x80, 0x04};  // Remaining length 65536.
  DecodeResult r = DecodePacket(header, o, &p);
  EXPECT_EQ(r.status, DecodeStatus::kError);
  EXPECT_EQ(r.reason, ReasonCode::kPacketTooLarge);
  EXPECT_EQ(r.consumed, 4u);
  // Exactly at the limit is fine (the limit counts the whole packet).
  o.max_packet_size = 2 + 4;
  const std::vector<uint8_t> ok = {0x30, 0x04, 0x00, 0x01, 't', 0x00};
  r = DecodePacket(ok, o, &p);
  EXPECT_EQ(r.status, DecodeStatus::kOk) << r.what;
  o.max_packet_size = 5;
  EXPECT_EQ(DecodePacket(ok, o, &p).reason, ReasonCode::kPacketTooLarge);
}

TEST(DecodeTest, EmptyAndPartialInputNeedMore) {
  Packet p;
  DecodeOptions o{.version = ProtocolVersion::kV311};
  EXPECT_EQ(DecodePacket({}, o, &p).status, DecodeStatus::kNeedMore);
  const std::vector<uint8_t> partial = {0x30, 0x80};
  EXPECT_EQ(DecodePacket(partial, o, &p).status, DecodeStatus::kNeedMore);
}

// Fixed-header errors do not wait for the rest of the packet.
TEST(DecodeTest, BadFirstByteReportedImmediately) {
  Packet p;
  DecodeOptions o{.version = ProtocolVersion::kV311};
  const std::vector<uint8_t> one = {0x36};
  EXPECT_EQ(DecodePacket(one, o, &p).reason, ReasonCode::kMalformedPacket);
}

// 3.1 tolerates the DUP bit on SUBSCRIBE retries; 3.1.1 does not.
TEST(DecodeTest, Mqtt31SubscribeDupTolerated) {
  Packet p;
  const std::vector<uint8_t> bytes = Pkt(0x8A, Bytes().U16(1).Str("a").U8(1));
  EXPECT_EQ(DecodePacket(bytes, DecodeOptions{.version = ProtocolVersion::kV31}, &p).status,
            DecodeStatus::kOk);
  EXPECT_EQ(DecodePacket(bytes, DecodeOptions{.version = ProtocolVersion::kV311}, &p).reason,
            ReasonCode::kMalformedPacket);
}

// With validate_subscribe_filters off (the broker's setting) a bad filter
// decodes, so the broker can refuse it alone in SUBACK; the default rejects.
TEST(DecodeTest, SubscribeFilterValidationCanBeLeftToTheBroker) {
  Packet p;
  for (ProtocolVersion v : {ProtocolVersion::kV311, ProtocolVersion::kV5}) {
    const std::vector<uint8_t> bytes =
        v == ProtocolVersion::kV5 ? Subscribe5("a/#/b", 1) : Subscribe311("a/#/b", 1);
    DecodeOptions strict{.version = v};
    EXPECT_EQ(DecodePacket(bytes, strict, &p).reason, ReasonCode::kTopicFilterInvalid);
    DecodeOptions lenient{.version = v, .validate_subscribe_filters = false};
    ASSERT_EQ(DecodePacket(bytes, lenient, &p).status, DecodeStatus::kOk);
    EXPECT_EQ(std::get<Subscribe>(p).subscriptions[0].filter, "a/#/b");
  }
}

// Password without user name: a Protocol Error in 3.1.1 [MQTT-3.1.2-22],
// allowed in 5.0 (3.1.2.9).
TEST(DecodeTest, PasswordWithoutUserNameAllowedIn5) {
  Packet p;
  const std::vector<uint8_t> bytes = Connect5(0x42, {}, Bytes().Str("c").Str("pw"));
  const DecodeResult r = DecodePacket(bytes, DecodeOptions{}, &p);
  ASSERT_EQ(r.status, DecodeStatus::kOk) << r.what;
  EXPECT_FALSE(std::get<Connect>(p).username.has_value());
  EXPECT_EQ(std::get<Connect>(p).password->size(), 2u);
}

// Subscription Identifier may repeat in PUBLISH (one per matching
// subscription), User Property anywhere.
TEST(DecodeTest, RepeatableProperties) {
  Packet p;
  const std::vector<uint8_t> bytes = Publish5(
      Bytes().U8(0x0B).U8(1).U8(0x0B).U8(2).U8(0x26).Str("k").Str("v").U8(0x26).Str("k").Str("w"));
  const DecodeResult r = DecodePacket(bytes, DecodeOptions{.version = ProtocolVersion::kV5}, &p);
  ASSERT_EQ(r.status, DecodeStatus::kOk) << r.what;
  const Publish& pub = std::get<Publish>(p);
  EXPECT_EQ(pub.properties.subscription_identifiers.size(), 2u);
  EXPECT_EQ(pub.properties.user_properties.size(), 2u);
  EXPECT_EQ(pub.properties.user_properties[1].second, "w");
}

// The error carries the CONNECT level so the broker picks the CONNACK form.
TEST(DecodeTest, ConnectErrorCarriesLevel) {
  Packet p;
  const DecodeResult r = DecodePacket(Connect5(0x03, {}, Bytes().Str("c")), DecodeOptions{}, &p);
  EXPECT_EQ(r.reason, ReasonCode::kMalformedPacket);
  EXPECT_EQ(r.protocol_level, 5);
}

}  // namespace
}  // namespace shardmq::mqtt
