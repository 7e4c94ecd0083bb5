// Each packet layout is written once as a template over a "sink"; SizeSink
// computes the exact size and WriteSink writes, so the two cannot disagree.
#include "mqtt/encoder.h"

#include <type_traits>

#include "mqtt/internal/wire.h"
#include "mqtt/varint.h"

namespace shardmq::mqtt {
namespace {

using internal::SizeSink;
using internal::WriteSink;

constexpr bool IsV5(ProtocolVersion v) { return v == ProtocolVersion::kV5; }

// Property Length + properties, with the body size computed once.
template <class Sink>
void WriteProps(const Properties& p, size_t body, Sink& s) {
  if constexpr (std::is_same_v<Sink, SizeSink>) {
    s.n += VarintSize(static_cast<uint32_t>(body)) + body;
  } else {
    s.p += EncodeProperties(p, body, s.p);
  }
}

// Same, with the body size measured in the sizing pass and replayed (via
// PropsSizeCache) in the writing pass.
template <class Sink>
void WriteProps(const Properties& p, Sink& s) {
  internal::PropsSizeCache* cache = s.cache;
  size_t body;
  if constexpr (std::is_same_v<Sink, SizeSink>) {
    body = PropertiesBodySize(p);
    if (cache != nullptr && cache->count < 2) cache->sizes[cache->count++] = body;
  } else {
    body = cache != nullptr && cache->next < cache->count ? cache->sizes[cache->next++]
                                                          : PropertiesBodySize(p);
  }
  WriteProps(p, body, s);
}

uint8_t FirstByte(const Connect&) { return 0x10; }
uint8_t FirstByte(const Connack&) { return 0x20; }
uint8_t FirstByte(const Publish& p) {
  return static_cast<uint8_t>(0x30 | (p.dup ? 0x08 : 0) | ((p.qos & 0x03) << 1) |
                              (p.retain ? 0x01 : 0));
}
uint8_t FirstByte(const PubAck& p) {
  const uint8_t type = static_cast<uint8_t>(p.type) << 4;
  return p.type == PacketType::kPubrel ? static_cast<uint8_t>(type | 0x02) : type;
}
uint8_t FirstByte(const Subscribe&) { return 0x82; }
uint8_t FirstByte(const Suback&) { return 0x90; }
uint8_t FirstByte(const Unsubscribe&) { return 0xA2; }
uint8_t FirstByte(const Unsuback&) { return 0xB0; }
uint8_t FirstByte(const PingReq&) { return 0xC0; }
uint8_t FirstByte(const PingResp&) { return 0xD0; }
uint8_t FirstByte(const Disconnect&) { return 0xE0; }
uint8_t FirstByte(const Auth&) { return 0xF0; }

template <class Sink>
void WriteBody(const Connect& c, ProtocolVersion, Sink& s) {
  const ProtocolVersion v = c.version;
  if (v == ProtocolVersion::kV31) {
    s.Str("MQIsdp");
  } else {
    s.Str("MQTT");
  }
  s.U8(static_cast<uint8_t>(static_cast<uint8_t>(v) | (c.bridge ? kBridgeLevelFlag : 0)));
  uint8_t flags = c.clean_start ? 0x02 : 0;
  if (c.will) {
    flags |= 0x04 | ((c.will->qos & 0x03) << 3) | (c.will->retain ? 0x20 : 0);
  }
  if (c.password) flags |= 0x40;
  if (c.username) flags |= 0x80;
  s.U8(flags);
  s.U16(c.keep_alive);
  if (IsV5(v)) WriteProps(c.properties, s);
  s.Str(c.client_id);
  if (c.will) {
    if (IsV5(v)) WriteProps(c.will->properties, s);
    s.Str(c.will->topic);
    s.Bin(c.will->payload);
  }
  if (c.username) s.Str(*c.username);
  if (c.password) s.Bin(*c.password);
}

template <class Sink>
void WriteBody(const Connack& c, ProtocolVersion v, Sink& s) {
  s.U8(c.session_present && v != ProtocolVersion::kV31 ? 0x01 : 0x00);
  if (IsV5(v)) {
    s.U8(static_cast<uint8_t>(c.reason_code));
    WriteProps(c.properties, s);
  } else {
    s.U8(static_cast<uint8_t>(c.return_code));
  }
}

template <class Sink>
void WritePublishHeader(const Publish& p, ProtocolVersion v, Sink& s) {
  s.Str(p.topic);
  if (p.qos > 0) s.U16(p.packet_id);
  if (IsV5(v)) WriteProps(p.properties, s);
}

template <class Sink>
void WriteBody(const Publish& p, ProtocolVersion v, Sink& s) {
  WritePublishHeader(p, v, s);
  s.Raw(p.payload);
}

template <class Sink>
void WriteBody(const PubAck& a, ProtocolVersion v, Sink& s) {
  s.U16(a.packet_id);
  if (!IsV5(v)) return;
  // Short forms (3.4.2.1): omit what is implied.
  const size_t body = PropertiesBodySize(a.properties);
  if (body == 0 && a.reason_code == ReasonCode::kSuccess) return;
  s.U8(static_cast<uint8_t>(a.reason_code));
  if (body == 0) return;
  WriteProps(a.properties, body, s);
}

template <class Sink>
void WriteBody(const Subscribe& sub, ProtocolVersion v, Sink& s) {
  s.U16(sub.packet_id);
  if (IsV5(v)) WriteProps(sub.properties, s);
  for (const Subscription& e : sub.subscriptions) {
    s.Str(e.filter);
    uint8_t opts = e.options.qos & 0x03;
    if (IsV5(v)) {
      opts |= (e.options.no_local ? 0x04 : 0) | (e.options.retain_as_published ? 0x08 : 0) |
              ((e.options.retain_handling & 0x03) << 4);
    }
    s.U8(opts);
  }
}

template <class Sink>
void WriteBody(const Suback& a, ProtocolVersion v, Sink& s) {
  s.U16(a.packet_id);
  if (IsV5(v)) WriteProps(a.properties, s);
  for (ReasonCode c : a.reason_codes) s.U8(static_cast<uint8_t>(c));
}

template <class Sink>
void WriteBody(const Unsubscribe& u, ProtocolVersion v, Sink& s) {
  s.U16(u.packet_id);
  if (IsV5(v)) WriteProps(u.properties, s);
  for (std::string_view f : u.topic_filters) s.Str(f);
}

template <class Sink>
void WriteBody(const Unsuback& u, ProtocolVersion v, Sink& s) {
  s.U16(u.packet_id);
  if (!IsV5(v)) return;
  WriteProps(u.properties, s);
  for (ReasonCode c : u.reason_codes) s.U8(static_cast<uint8_t>(c));
}

template <class Sink>
void WriteBody(const PingReq&, ProtocolVersion, Sink&) {}
template <class Sink>
void WriteBody(const PingResp&, ProtocolVersion, Sink&) {}

// DISCONNECT and AUTH short forms (3.14.2.1, 3.15.2.1).
template <class Sink>
void WriteReasonAndProps(ReasonCode reason, const Properties& props, Sink& s) {
  const size_t body = PropertiesBodySize(props);
  if (body == 0 && reason == ReasonCode::kSuccess) return;
  s.U8(static_cast<uint8_t>(reason));
  if (body == 0) return;
  WriteProps(props, body, s);
}

template <class Sink>
void WriteBody(const Disconnect& d, ProtocolVersion v, Sink& s) {
  if (IsV5(v)) WriteReasonAndProps(d.reason_code, d.properties, s);
}

template <class Sink>
void WriteBody(const Auth& a, ProtocolVersion, Sink& s) {
  WriteReasonAndProps(a.reason_code, a.properties, s);
}

template <class T>
size_t BodySize(const T& p, ProtocolVersion v) {
  SizeSink s;
  WriteBody(p, v, s);
  return s.n;
}

template <class T>
size_t SizeOf(const T& p, ProtocolVersion v) {
  const size_t body = BodySize(p, v);
  if (body > kMaxVarint) return 0;
  return 1 + VarintSize(static_cast<uint32_t>(body)) + body;
}

template <class T>
size_t EncodeImpl(const T& p, ProtocolVersion v, absl::Span<uint8_t> out) {
  internal::PropsSizeCache cache;
  SizeSink size{0, &cache};
  WriteBody(p, v, size);
  const size_t body = size.n;
  if (body > kMaxVarint) return 0;
  const size_t total = 1 + VarintSize(static_cast<uint32_t>(body)) + body;
  if (out.size() < total) return 0;
  WriteSink s{out.data(), &cache};
  s.U8(FirstByte(p));
  s.Varint(static_cast<uint32_t>(body));
  WriteBody(p, v, s);
  return total;
}

}  // namespace

#define SHARDMQ_MQTT_DEFINE_ENCODE(T)                                                              \
  size_t EncodedSize(const T& packet, ProtocolVersion version) { return SizeOf(packet, version); } \
  size_t Encode(const T& packet, ProtocolVersion version, absl::Span<uint8_t> out) {               \
    return EncodeImpl(packet, version, out);                                                       \
  }

SHARDMQ_MQTT_DEFINE_ENCODE(Connect)
SHARDMQ_MQTT_DEFINE_ENCODE(Connack)
SHARDMQ_MQTT_DEFINE_ENCODE(Publish)
SHARDMQ_MQTT_DEFINE_ENCODE(PubAck)
SHARDMQ_MQTT_DEFINE_ENCODE(Subscribe)
SHARDMQ_MQTT_DEFINE_ENCODE(Suback)
SHARDMQ_MQTT_DEFINE_ENCODE(Unsubscribe)
SHARDMQ_MQTT_DEFINE_ENCODE(Unsuback)
SHARDMQ_MQTT_DEFINE_ENCODE(PingReq)
SHARDMQ_MQTT_DEFINE_ENCODE(PingResp)
SHARDMQ_MQTT_DEFINE_ENCODE(Disconnect)
SHARDMQ_MQTT_DEFINE_ENCODE(Auth)
#undef SHARDMQ_MQTT_DEFINE_ENCODE

size_t EncodedSize(const Packet& packet, ProtocolVersion version) {
  return std::visit([version](const auto& p) { return SizeOf(p, version); }, packet);
}

size_t Encode(const Packet& packet, ProtocolVersion version, absl::Span<uint8_t> out) {
  return std::visit([version, out](const auto& p) { return EncodeImpl(p, version, out); }, packet);
}

size_t PublishHeaderSize(const Publish& packet, ProtocolVersion version) {
  SizeSink s;
  WritePublishHeader(packet, version, s);
  const size_t body = s.n + packet.payload.size();
  if (body > kMaxVarint) return 0;
  return 1 + VarintSize(static_cast<uint32_t>(body)) + s.n;
}

size_t EncodePublishHeader(const Publish& packet, ProtocolVersion version,
                           absl::Span<uint8_t> out) {
  internal::PropsSizeCache cache;
  SizeSink size{0, &cache};
  WritePublishHeader(packet, version, size);
  const size_t body = size.n + packet.payload.size();
  if (body > kMaxVarint) return 0;
  const size_t total = 1 + VarintSize(static_cast<uint32_t>(body)) + size.n;
  if (out.size() < total) return 0;
  WriteSink s{out.data(), &cache};
  s.U8(FirstByte(packet));
  s.Varint(static_cast<uint32_t>(body));
  WritePublishHeader(packet, version, s);
  return total;
}

}  // namespace shardmq::mqtt
