// Encoder/decoder agreement: every sample packet of every version round-trips
// (encode -> decode -> equal -> re-encode byte-identical), plus byte-exact
// checks against the examples in the specifications.
#include <cstdint>
#include <string>
#include <vector>

#include "bytes_builder.h"
#include "gtest/gtest.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/reason_code.h"
#include "sample_packets.h"

namespace shardmq::mqtt {
namespace {

using testing::Bytes;
using testing::Pkt;
using testing::SamplePacket;
using testing::SamplePackets;

std::vector<uint8_t> EncodeToVector(const Packet& p, ProtocolVersion v) {
  std::vector<uint8_t> out(EncodedSize(p, v));
  EXPECT_GT(out.size(), 0u);
  EXPECT_EQ(Encode(p, v, absl::MakeSpan(out)), out.size());
  return out;
}

class RoundTripTest : public ::testing::TestWithParam<ProtocolVersion> {};

TEST_P(RoundTripTest, EveryPacketTypeRoundTrips) {
  const ProtocolVersion v = GetParam();
  const std::vector<SamplePacket> samples = SamplePackets(v);
  ASSERT_GE(samples.size(), 20u);
  for (const SamplePacket& s : samples) {
    SCOPED_TRACE(s.name);
    const std::vector<uint8_t> bytes = EncodeToVector(s.packet, v);
    DecodeOptions o;
    o.version = v;
    Packet decoded;
    const DecodeResult r = DecodePacket(bytes, o, &decoded);
    ASSERT_EQ(r.status, DecodeStatus::kOk) << r.what;
    EXPECT_EQ(r.consumed, bytes.size());
    EXPECT_TRUE(decoded == s.packet);
    EXPECT_EQ(GetPacketType(decoded), GetPacketType(s.packet));
    EXPECT_EQ(EncodeToVector(decoded, v), bytes);
    // Every strict prefix is "need more", never an error.
    for (size_t n = 0; n < bytes.size(); ++n) {
      Packet p;
      const DecodeResult pr = DecodePacket(absl::MakeConstSpan(bytes.data(), n), o, &p);
      ASSERT_EQ(pr.status, DecodeStatus::kNeedMore) << "prefix " << n;
    }
  }
}

// Before CONNECT the version is unknown; CONNECT carries its own.
TEST_P(RoundTripTest, ConnectDecodesWithUnknownVersion) {
  const ProtocolVersion v = GetParam();
  for (const SamplePacket& s : SamplePackets(v)) {
    if (!std::holds_alternative<Connect>(s.packet)) continue;
    SCOPED_TRACE(s.name);
    const std::vector<uint8_t> bytes = EncodeToVector(s.packet, v);
    Packet decoded;
    const DecodeResult r = DecodePacket(bytes, DecodeOptions{}, &decoded);
    ASSERT_EQ(r.status, DecodeStatus::kOk) << r.what;
    EXPECT_TRUE(decoded == s.packet);
    EXPECT_EQ(std::get<Connect>(decoded).version, v);
  }
}

TEST_P(RoundTripTest, EncodeRefusesTooSmallBuffer) {
  const ProtocolVersion v = GetParam();
  for (const SamplePacket& s : SamplePackets(v)) {
    const size_t size = EncodedSize(s.packet, v);
    std::vector<uint8_t> out(size - 1);
    EXPECT_EQ(Encode(s.packet, v, absl::MakeSpan(out)), 0u) << s.name;
  }
}

// The header-only PUBLISH encoding followed by the payload is the packet.
TEST_P(RoundTripTest, PublishHeaderPlusPayloadEqualsPacket) {
  const ProtocolVersion v = GetParam();
  for (const SamplePacket& s : SamplePackets(v)) {
    const Publish* p = std::get_if<Publish>(&s.packet);
    if (p == nullptr) continue;
    const std::vector<uint8_t> whole = EncodeToVector(s.packet, v);
    std::vector<uint8_t> header(PublishHeaderSize(*p, v));
    ASSERT_EQ(EncodePublishHeader(*p, v, absl::MakeSpan(header)), header.size());
    EXPECT_EQ(header.size() + p->payload.size(), whole.size());
    header.insert(header.end(), p->payload.begin(), p->payload.end());
    EXPECT_EQ(header, whole) << s.name;
  }
}

INSTANTIATE_TEST_SUITE_P(AllVersions, RoundTripTest,
                         ::testing::Values(ProtocolVersion::kV31, ProtocolVersion::kV311,
                                           ProtocolVersion::kV5),
                         [](const auto& info) {
                           return std::string(info.param == ProtocolVersion::kV31    ? "V31"
                                              : info.param == ProtocolVersion::kV311 ? "V311"
                                                                                     : "V5");
                         });

// 3.1.1 section 3.1.2.10 non-normative example: protocol name "MQTT", level
// 4, flags 0xCE (user name, password, Will QoS 1, Will, Clean Session) and
// Keep Alive 10.
TEST(SpecExampleTest, Connect311VariableHeader) {
  Connect c;
  c.version = ProtocolVersion::kV311;
  c.clean_start = true;
  c.keep_alive = 10;
  c.client_id = "c";
  c.will = Will{.topic = "w", .qos = 1};
  c.username = "u";
  c.password = absl::Span<const uint8_t>();
  const std::vector<uint8_t> bytes = EncodeToVector(c, ProtocolVersion::kV311);
  const std::vector<uint8_t> var_header = {0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0xCE, 0x00, 0x0A};
  ASSERT_GT(bytes.size(), 12u);
  EXPECT_EQ(bytes[0], 0x10);
  EXPECT_EQ(std::vector<uint8_t>(bytes.begin() + 2, bytes.begin() + 12), var_header);
}

// MQTT 5 section 3.1.2.12 example: same flags, Keep Alive 10, properties of
// length 5 holding Session Expiry Interval 10.
TEST(SpecExampleTest, Connect5VariableHeader) {
  Connect c;
  c.version = ProtocolVersion::kV5;
  c.keep_alive = 10;
  c.client_id = "c";
  c.will = Will{.topic = "w", .qos = 1};
  c.username = "u";
  c.password = absl::Span<const uint8_t>();
  c.properties.session_expiry_interval = 10;
  const std::vector<uint8_t> bytes = EncodeToVector(c, ProtocolVersion::kV5);
  const std::vector<uint8_t> var_header = {0x00, 0x04, 'M',  'Q',  'T',  'T',  0x05, 0xCE,
                                           0x00, 0x0A, 0x05, 0x11, 0x00, 0x00, 0x00, 0x0A};
  EXPECT_EQ(std::vector<uint8_t>(bytes.begin() + 2, bytes.begin() + 18), var_header);
}

// MQTT 3.1 writes "MQIsdp" and level 3.
TEST(SpecExampleTest, Connect31ProtocolName) {
  Connect c;
  c.version = ProtocolVersion::kV31;
  c.client_id = "c";
  const std::vector<uint8_t> bytes = EncodeToVector(c, ProtocolVersion::kV311);
  const std::vector<uint8_t> expected = {0x10, 0x0F, 0x00, 0x06, 'M',  'Q',  'I',  's', 'd',
                                         'p',  0x03, 0x02, 0x00, 0x00, 0x00, 0x01, 'c'};
  EXPECT_EQ(bytes, expected);
}

// 3.1.1 table 3.3: PUBLISH variable header for topic "a/b", packet id 10.
TEST(SpecExampleTest, Publish311VariableHeader) {
  Publish p;
  p.topic = "a/b";
  p.qos = 1;
  p.packet_id = 10;
  const std::vector<uint8_t> expected = {0x32, 0x07, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A};
  EXPECT_EQ(EncodeToVector(p, ProtocolVersion::kV311), expected);
}

// 1.5.4 example: "A" + U+2A6D4 is encoded as 00 05 41 F0 AA 9B 94.
TEST(SpecExampleTest, Utf8StringEncoding) {
  Publish p;
  p.topic = "A\xF0\xAA\x9B\x94";
  const std::vector<uint8_t> expected = {0x30, 0x07, 0x00, 0x05, 0x41, 0xF0, 0xAA, 0x9B, 0x94};
  const std::vector<uint8_t> bytes = EncodeToVector(p, ProtocolVersion::kV311);
  EXPECT_EQ(bytes, expected);
  Packet decoded;
  DecodeOptions o{.version = ProtocolVersion::kV311};
  ASSERT_EQ(DecodePacket(bytes, o, &decoded).status, DecodeStatus::kOk);
  EXPECT_EQ(std::get<Publish>(decoded).topic, "A\xF0\xAA\x9B\x94");
}

// [MQTT-1.5.4-3]: U+FEFF is kept, not stripped.
TEST(SpecExampleTest, MQTT_1_5_4_3_ByteOrderMarkNotStripped) {
  const std::vector<uint8_t> bytes = Pkt(0x30, Bytes().Str("\xEF\xBB\xBF"
                                                           "a"));
  Packet decoded;
  DecodeOptions o{.version = ProtocolVersion::kV311};
  ASSERT_EQ(DecodePacket(bytes, o, &decoded).status, DecodeStatus::kOk);
  EXPECT_EQ(std::get<Publish>(decoded).topic,
            "\xEF\xBB\xBF"
            "a");
}

TEST(SpecExampleTest, ShortFixedLayouts) {
  EXPECT_EQ(EncodeToVector(PingReq{}, ProtocolVersion::kV311), (std::vector<uint8_t>{0xC0, 0x00}));
  EXPECT_EQ(EncodeToVector(PingResp{}, ProtocolVersion::kV5), (std::vector<uint8_t>{0xD0, 0x00}));
  EXPECT_EQ(EncodeToVector(Disconnect{}, ProtocolVersion::kV311),
            (std::vector<uint8_t>{0xE0, 0x00}));
  // 3.1.1 CONNACK: two bytes of variable header.
  EXPECT_EQ(EncodeToVector(Connack{.session_present = true}, ProtocolVersion::kV311),
            (std::vector<uint8_t>{0x20, 0x02, 0x01, 0x00}));
  // MQTT 5 CONNACK always has a property length.
  EXPECT_EQ(EncodeToVector(Connack{}, ProtocolVersion::kV5),
            (std::vector<uint8_t>{0x20, 0x03, 0x00, 0x00, 0x00}));
  EXPECT_EQ(
      EncodeToVector(PubAck{.type = PacketType::kPubrel, .packet_id = 258}, ProtocolVersion::kV311),
      (std::vector<uint8_t>{0x62, 0x02, 0x01, 0x02}));
}

// MQTT 5 short forms (3.4.2.1, 3.14.2.1, 3.15.2.1): success without
// properties is omitted; a reason without properties omits the length.
TEST(SpecExampleTest, V5ShortFormsEncode) {
  const ProtocolVersion v5 = ProtocolVersion::kV5;
  EXPECT_EQ(EncodeToVector(PubAck{.type = PacketType::kPuback, .packet_id = 42}, v5),
            (std::vector<uint8_t>{0x40, 0x02, 0x00, 0x2A}));
  EXPECT_EQ(EncodeToVector(PubAck{.type = PacketType::kPubrec,
                                  .packet_id = 42,
                                  .reason_code = ReasonCode::kNoMatchingSubscribers},
                           v5),
            (std::vector<uint8_t>{0x50, 0x03, 0x00, 0x2A, 0x10}));
  EXPECT_EQ(EncodeToVector(Disconnect{}, v5), (std::vector<uint8_t>{0xE0, 0x00}));
  EXPECT_EQ(EncodeToVector(Disconnect{.reason_code = ReasonCode::kServerShuttingDown}, v5),
            (std::vector<uint8_t>{0xE0, 0x01, 0x8B}));
  EXPECT_EQ(EncodeToVector(Auth{}, v5), (std::vector<uint8_t>{0xF0, 0x00}));
}

TEST(SpecExampleTest, V5ShortFormsDecode) {
  DecodeOptions o{.version = ProtocolVersion::kV5};
  Packet p;
  // Remaining length 2: Success, no properties.
  ASSERT_EQ(DecodePacket(std::vector<uint8_t>{0x70, 0x02, 0x00, 0x05}, o, &p).status,
            DecodeStatus::kOk);
  EXPECT_EQ(std::get<PubAck>(p).type, PacketType::kPubcomp);
  EXPECT_EQ(std::get<PubAck>(p).reason_code, ReasonCode::kSuccess);
  // Remaining length 3: reason code, property length omitted.
  ASSERT_EQ(DecodePacket(std::vector<uint8_t>{0x62, 0x03, 0x00, 0x05, 0x92}, o, &p).status,
            DecodeStatus::kOk);
  EXPECT_EQ(std::get<PubAck>(p).reason_code, ReasonCode::kPacketIdentifierNotFound);
  // Remaining length 4 with property length 0.
  ASSERT_EQ(DecodePacket(std::vector<uint8_t>{0x40, 0x04, 0x00, 0x05, 0x10, 0x00}, o, &p).status,
            DecodeStatus::kOk);
  EXPECT_EQ(std::get<PubAck>(p).reason_code, ReasonCode::kNoMatchingSubscribers);
  // DISCONNECT with remaining length 1, AUTH with 0.
  ASSERT_EQ(DecodePacket(std::vector<uint8_t>{0xE0, 0x01, 0x04}, o, &p).status, DecodeStatus::kOk);
  EXPECT_EQ(std::get<Disconnect>(p).reason_code, ReasonCode::kDisconnectWithWillMessage);
  ASSERT_EQ(DecodePacket(std::vector<uint8_t>{0xF0, 0x00}, o, &p).status, DecodeStatus::kOk);
  EXPECT_EQ(std::get<Auth>(p).reason_code, ReasonCode::kSuccess);
}

// Mosquitto bridges: levels 0x83 and 0x84 decode with the bridge flag.
TEST(SpecExampleTest, BridgeProtocolLevels) {
  Packet p;
  const std::vector<uint8_t> v311 =
      Pkt(0x10, Bytes().Str("MQTT").U8(0x84).U8(0x02).U16(60).Str("bridge"));
  DecodeResult r = DecodePacket(v311, DecodeOptions{}, &p);
  ASSERT_EQ(r.status, DecodeStatus::kOk) << r.what;
  EXPECT_EQ(r.protocol_level, 0x84);
  EXPECT_TRUE(std::get<Connect>(p).bridge);
  EXPECT_EQ(std::get<Connect>(p).version, ProtocolVersion::kV311);
  const std::vector<uint8_t> v31 =
      Pkt(0x10, Bytes().Str("MQIsdp").U8(0x83).U8(0x02).U16(60).Str("bridge"));
  r = DecodePacket(v31, DecodeOptions{}, &p);
  ASSERT_EQ(r.status, DecodeStatus::kOk) << r.what;
  EXPECT_TRUE(std::get<Connect>(p).bridge);
  EXPECT_EQ(std::get<Connect>(p).version, ProtocolVersion::kV31);
  // Re-encoding keeps the bridge bit.
  EXPECT_EQ(EncodeToVector(p, ProtocolVersion::kV31), v31);
}

// Decoded strings and payloads are views into the input: no copies.
TEST(ZeroCopyTest, PublishViewsPointIntoInput) {
  Publish pub;
  pub.topic = "t/x";
  const uint8_t payload[] = {1, 2, 3, 4};
  pub.payload = payload;
  const std::vector<uint8_t> bytes = EncodeToVector(pub, ProtocolVersion::kV311);
  Packet p;
  ASSERT_EQ(DecodePacket(bytes, DecodeOptions{.version = ProtocolVersion::kV311}, &p).status,
            DecodeStatus::kOk);
  const Publish& d = std::get<Publish>(p);
  EXPECT_EQ(reinterpret_cast<const uint8_t*>(d.topic.data()), bytes.data() + 4);
  EXPECT_EQ(d.payload.data(), bytes.data() + 7);
}

// The unsupported-version answer: 3.1.1 form below level 5, v5 form above.
TEST(UnsupportedVersionTest, ReportsLevelAndConnackForm) {
  Packet p;
  for (uint8_t level : {0, 1, 2, 6, 7, 0x85, 0xFF}) {
    const std::vector<uint8_t> bytes =
        Pkt(0x10, Bytes().Str("MQTT").U8(level).U8(0x02).U16(60).Str("c"));
    const DecodeResult r = DecodePacket(bytes, DecodeOptions{}, &p);
    EXPECT_EQ(r.status, DecodeStatus::kError);
    EXPECT_EQ(r.reason, ReasonCode::kUnsupportedProtocolVersion);
    EXPECT_EQ(r.protocol_level, level);
    EXPECT_EQ(r.consumed, bytes.size());
  }
  EXPECT_EQ(ConnackVersionForLevel(3), ProtocolVersion::kV311);
  EXPECT_EQ(ConnackVersionForLevel(6), ProtocolVersion::kV5);
  EXPECT_EQ(ToConnectReturnCode(ReasonCode::kUnsupportedProtocolVersion),
            ConnectReturnCode::kUnacceptableProtocolVersion);
}

TEST(ReasonCodeTest, Names) {
  EXPECT_STREQ(ReasonCodeName(ReasonCode::kSuccess), "Success");
  EXPECT_STREQ(ReasonCodeName(ReasonCode::kMalformedPacket), "Malformed Packet");
  EXPECT_STREQ(ReasonCodeName(ReasonCode::kProtocolError), "Protocol Error");
  EXPECT_STREQ(ReasonCodeName(ReasonCode::kPacketTooLarge), "Packet too large");
  EXPECT_STREQ(ReasonCodeName(ReasonCode::kWildcardSubscriptionsNotSupported),
               "Wildcard Subscriptions not supported");
  EXPECT_STREQ(ReasonCodeName(static_cast<ReasonCode>(0x03)), "Unknown reason code");
  EXPECT_STREQ(ConnectReturnCodeName(ConnectReturnCode::kIdentifierRejected),
               "Connection Refused, identifier rejected");
  EXPECT_TRUE(IsError(ReasonCode::kUnspecifiedError));
  EXPECT_FALSE(IsError(ReasonCode::kGrantedQos2));
  EXPECT_STREQ(PacketTypeName(PacketType::kUnsuback), "UNSUBACK");
}

}  // namespace
}  // namespace shardmq::mqtt

namespace shardmq::mqtt {
namespace {

TEST(PacketTypeTest, EveryAlternativeMapsToItsWireType) {
  EXPECT_EQ(GetPacketType(Connect{}), PacketType::kConnect);
  EXPECT_EQ(GetPacketType(Connack{}), PacketType::kConnack);
  EXPECT_EQ(GetPacketType(Publish{}), PacketType::kPublish);
  EXPECT_EQ(GetPacketType(PubAck{.type = PacketType::kPubrec}), PacketType::kPubrec);
  EXPECT_EQ(GetPacketType(Subscribe{}), PacketType::kSubscribe);
  EXPECT_EQ(GetPacketType(Suback{}), PacketType::kSuback);
  EXPECT_EQ(GetPacketType(Unsubscribe{}), PacketType::kUnsubscribe);
  EXPECT_EQ(GetPacketType(Unsuback{}), PacketType::kUnsuback);
  EXPECT_EQ(GetPacketType(PingReq{}), PacketType::kPingreq);
  EXPECT_EQ(GetPacketType(PingResp{}), PacketType::kPingresp);
  EXPECT_EQ(GetPacketType(Disconnect{}), PacketType::kDisconnect);
  EXPECT_EQ(GetPacketType(Auth{}), PacketType::kAuth);
}

}  // namespace
}  // namespace shardmq::mqtt
