// One function per packet type, each enforcing the normative statements of
// its section; every rejection names the spec statement it enforces.
#include "mqtt/decoder.h"

#include <algorithm>
#include <array>
#include <initializer_list>
#include <new>

#include "mqtt/internal/wire.h"
#include "mqtt/utf8.h"
#include "mqtt/varint.h"

namespace shardmq::mqtt {
namespace {

using internal::Reader;
using Status = PropertyError;  // reason == kSuccess means ok.

constexpr Status kOk{};
Status Malformed(const char* what) { return {ReasonCode::kMalformedPacket, what}; }
Status ProtocolError(const char* what) { return {ReasonCode::kProtocolError, what}; }

// Makes *out hold a fresh T and returns it. When *out already holds a T (the
// common case: a connection's decoder reuses one Packet), the T is
// re-created in place with default-initialisation; every member has a
// default member initializer, so this equals T{} without the value-init
// zeroing of the whole ~400-byte struct that variant::emplace performs.
template <class T>
T& Reset(Packet* out) {
  if (T* p = std::get_if<T>(out)) {
    p->~T();
    return *::new (static_cast<void*>(p)) T;
  }
  return out->emplace<T>();
}

// A set of valid reason code values for one packet type.
class CodeSet {
 public:
  constexpr CodeSet(std::initializer_list<uint8_t> codes) {
    for (uint8_t c : codes) bits_[c >> 6] |= uint64_t{1} << (c & 63);
  }
  constexpr bool Contains(uint8_t c) const { return (bits_[c >> 6] >> (c & 63)) & 1; }

 private:
  std::array<uint64_t, 4> bits_{};
};

// MQTT 5 sections 3.2.2.2, 3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1, 3.9.3,
// 3.11.3, 3.14.2.1 and 3.15.2.1.
constexpr CodeSet kConnackCodes{0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
                                0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F};
constexpr CodeSet kPubackCodes{0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99};
constexpr CodeSet kPubrelCodes{0x00, 0x92};
constexpr CodeSet kSubackCodes{0x00, 0x01, 0x02, 0x80, 0x83, 0x87,
                               0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
constexpr CodeSet kSuback311Codes{0x00, 0x01, 0x02, 0x80};
constexpr CodeSet kUnsubackCodes{0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
constexpr CodeSet kDisconnectCodes{0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D,
                                   0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
                                   0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2};
constexpr CodeSet kAuthCodes{0x00, 0x18, 0x19};

// UTF-8 Encoded String: truncation or invalid UTF-8 is Malformed
// [MQTT-1.5.4-1], [MQTT-1.5.4-2].
Status ReadString(Reader& r, std::string_view* s) {
  if (!r.RawString(s)) return Malformed("truncated string");
  if (!IsValidMqttUtf8(*s)) return Malformed("string is not valid UTF-8");
  return kOk;
}

// Property Length + properties. A length beyond the packet is Malformed.
Status ReadProperties(Reader& r, PropertyContext ctx, Properties* props) {
  uint32_t len;
  if (!r.Varint(&len)) return Malformed("bad property length");
  absl::Span<const uint8_t> body;
  if (!r.Bytes(len, &body)) return Malformed("property length exceeds packet");
  return DecodeProperties(body, ctx, props);
}

// Packet Identifier: non-zero [MQTT-2.2.1-3] (3.1.1 numbering; 5.0 2.2.1).
Status ReadPacketId(Reader& r, uint16_t* id) {
  if (!r.U16(id)) return Malformed("truncated packet identifier");
  if (*id == 0) return ProtocolError("packet identifier 0 [MQTT-2.2.1-3]");
  return kOk;
}

Status CheckPayloadFormat(const Properties& props, absl::Span<const uint8_t> payload,
                          const DecodeOptions& o) {
  if (o.validate_utf8_payload && props.payload_format_indicator == 1 &&
      !IsValidMqttUtf8(
          std::string_view(reinterpret_cast<const char*>(payload.data()), payload.size()))) {
    return {ReasonCode::kPayloadFormatInvalid, "payload is not UTF-8 as its format says"};
  }
  return kOk;
}

// A topic name read with RawString: its UTF-8 (Malformed [MQTT-1.5.4-1],
// [MQTT-1.5.4-2]) and its syntax and limits (Topic Name invalid) checked in
// one pass by ValidateTopicName.
Status CheckTopicName(std::string_view topic, const DecodeOptions& o) {
  TopicLimits limits = o.topic_limits;
  limits.check_utf8 = true;
  switch (ValidateTopicName(topic, limits)) {
    case TopicError::kOk:
      return kOk;
    case TopicError::kInvalidUtf8:
      return Malformed("string is not valid UTF-8");
    default:
      return {ReasonCode::kTopicNameInvalid, "invalid topic name [MQTT-3.3.2-2]/[MQTT-4.7.3-1]"};
  }
}

Status DecodeConnect(Reader& r, const DecodeOptions& o, uint8_t* level_out, Packet* out) {
  std::string_view name;
  if (!r.RawString(&name)) return Malformed("truncated protocol name");
  uint8_t level;
  if (!r.U8(&level)) return Malformed("truncated protocol level");
  *level_out = level;
  const bool bridge = (level & kBridgeLevelFlag) != 0;
  const uint8_t base = level & 0x7F;
  ProtocolVersion v;
  if (name == "MQTT" && base == 4) {
    v = ProtocolVersion::kV311;
  } else if (name == "MQTT" && level == 5) {
    v = ProtocolVersion::kV5;
  } else if (name == "MQIsdp" && base == 3) {
    v = ProtocolVersion::kV31;
  } else {
    // [MQTT-3.1.2-1] wrong name / [MQTT-3.1.2-2] unsupported level: the
    // server answers CONNACK 0x01 (3.1.1) or 0x84 (5.0) and closes.
    return {ReasonCode::kUnsupportedProtocolVersion, "unsupported protocol name or level"};
  }
  uint8_t flags;
  uint16_t keep_alive;
  if (!r.U8(&flags) || !r.U16(&keep_alive)) return Malformed("truncated CONNECT header");
  // [MQTT-3.1.2-3]: the reserved flag MUST be 0.
  if (flags & 0x01) return Malformed("CONNECT reserved flag set [MQTT-3.1.2-3]");
  const bool will_flag = flags & 0x04;
  const uint8_t will_qos = (flags >> 3) & 0x03;
  const bool will_retain = flags & 0x20;
  const bool password_flag = flags & 0x40;
  const bool username_flag = flags & 0x80;
  if (will_qos == 3) return Malformed("Will QoS 3 [MQTT-3.1.2-14]");
  if (!will_flag && will_qos != 0) return Malformed("Will QoS without Will Flag [MQTT-3.1.2-13]");
  if (!will_flag && will_retain) {
    return Malformed("Will Retain without Will Flag [MQTT-3.1.2-15]");
  }
  if (v == ProtocolVersion::kV311 && password_flag && !username_flag) {
    return ProtocolError("Password Flag without User Name Flag [MQTT-3.1.2-22]");
  }

  Connect& c = Reset<Connect>(out);
  c.version = v;
  c.bridge = bridge;
  c.clean_start = flags & 0x02;
  c.keep_alive = keep_alive;
  if (v == ProtocolVersion::kV5) {
    if (Status s = ReadProperties(r, kCtxConnect, &c.properties); !s.ok()) return s;
  }
  if (Status s = ReadString(r, &c.client_id); !s.ok()) return s;
  if (c.client_id.empty()) {
    // [MQTT-3.1.3-8]: 3.1.1 zero-length id needs CleanSession=1; 3.1 needs
    // 1..23 characters (we accept longer, as Mosquitto does).
    if (v == ProtocolVersion::kV31 || (v == ProtocolVersion::kV311 && !c.clean_start)) {
      return {ReasonCode::kClientIdentifierNotValid, "empty client id [MQTT-3.1.3-8]"};
    }
  }
  if (will_flag) {
    Will& w = c.will.emplace();
    w.qos = will_qos;
    w.retain = will_retain;
    if (v == ProtocolVersion::kV5) {
      if (Status s = ReadProperties(r, kCtxWill, &w.properties); !s.ok()) return s;
    }
    if (!r.RawString(&w.topic)) return Malformed("truncated string");
    if (Status s = CheckTopicName(w.topic, o); !s.ok()) return s;
    if (!r.Binary(&w.payload)) return Malformed("truncated will payload");
    if (Status s = CheckPayloadFormat(w.properties, w.payload, o); !s.ok()) return s;
  }
  if (username_flag) {
    std::string_view user;
    if (Status s = ReadString(r, &user); !s.ok()) return s;
    c.username = user;
  }
  if (password_flag) {
    absl::Span<const uint8_t> password;
    if (!r.Binary(&password)) return Malformed("truncated password");
    c.password = password;
  }
  if (!r.empty()) return Malformed("trailing bytes after CONNECT payload");
  return kOk;
}

Status DecodeConnack(Reader& r, ProtocolVersion v, Packet* out) {
  Connack& c = Reset<Connack>(out);
  uint8_t flags, code;
  if (!r.U8(&flags) || !r.U8(&code)) return Malformed("truncated CONNACK");
  if (v == ProtocolVersion::kV31) {
    // 3.1: the first byte is reserved (topic name compression, unused).
  } else {
    if (flags & 0xFE) return Malformed("CONNACK reserved flags set [MQTT-3.2.2-1]");
    c.session_present = flags & 0x01;
  }
  if (v == ProtocolVersion::kV5) {
    if (!kConnackCodes.Contains(code)) return ProtocolError("invalid CONNACK reason code");
    c.reason_code = static_cast<ReasonCode>(code);
    // [MQTT-3.2.2-6]: Session Present must be 0 with an error reason code.
    if (c.session_present && code >= 0x80) {
      return ProtocolError("Session Present with error reason [MQTT-3.2.2-6]");
    }
    if (Status s = ReadProperties(r, kCtxConnack, &c.properties); !s.ok()) return s;
  } else {
    if (code > 5) return ProtocolError("invalid CONNACK return code");
    c.return_code = static_cast<ConnectReturnCode>(code);
    // [MQTT-3.2.2-4]: Session Present must be 0 with a non-zero return code.
    if (c.session_present && code != 0) {
      return ProtocolError("Session Present with refusal [MQTT-3.2.2-4]");
    }
  }
  if (!r.empty()) return Malformed("trailing bytes after CONNACK");
  return kOk;
}

Status DecodePublish(Reader& r, const FixedHeader& h, ProtocolVersion v, const DecodeOptions& o,
                     Packet* out) {
  Publish& p = Reset<Publish>(out);
  p.retain = h.flags & 0x01;
  p.qos = (h.flags >> 1) & 0x03;
  p.dup = h.flags & 0x08;
  // Its UTF-8 is checked with the rest of the name (CheckTopicName).
  if (!r.RawString(&p.topic)) return Malformed("truncated string");
  if (p.qos > 0) {
    if (Status s = ReadPacketId(r, &p.packet_id); !s.ok()) return s;
  }
  if (v == ProtocolVersion::kV5) {
    if (Status s = ReadProperties(r, kCtxPublish, &p.properties); !s.ok()) return s;
  }
  if (p.topic.empty() && v == ProtocolVersion::kV5) {
    // 3.3.2.3.4: a zero-length Topic Name needs a Topic Alias.
    if (!p.properties.topic_alias) return ProtocolError("empty topic name without Topic Alias");
  } else if (Status s = CheckTopicName(p.topic, o); !s.ok()) {
    return s;
  }
  r.Bytes(r.remaining(), &p.payload);
  return CheckPayloadFormat(p.properties, p.payload, o);
}

Status DecodePubAck(Reader& r, const FixedHeader& h, ProtocolVersion v, Packet* out) {
  PubAck& a = Reset<PubAck>(out);
  a.type = h.type;
  if (Status s = ReadPacketId(r, &a.packet_id); !s.ok()) return s;
  if (v == ProtocolVersion::kV5) {
    // 3.4.2.1: remaining length 2 means Success with no properties; the
    // property length may be omitted when the remaining length is < 4.
    if (!r.empty()) {
      uint8_t code;
      r.U8(&code);
      const bool rel = h.type == PacketType::kPubrel || h.type == PacketType::kPubcomp;
      if (!(rel ? kPubrelCodes : kPubackCodes).Contains(code)) {
        return ProtocolError("invalid acknowledgement reason code");
      }
      a.reason_code = static_cast<ReasonCode>(code);
      if (!r.empty()) {
        if (Status s = ReadProperties(r, kCtxPubAck, &a.properties); !s.ok()) return s;
      }
    }
  }
  if (!r.empty()) return Malformed("trailing bytes after acknowledgement");
  return kOk;
}

Status DecodeSubscribe(Reader& r, ProtocolVersion v, const DecodeOptions& o, Packet* out) {
  Subscribe& sub = Reset<Subscribe>(out);
  if (Status s = ReadPacketId(r, &sub.packet_id); !s.ok()) return s;
  if (v == ProtocolVersion::kV5) {
    if (Status s = ReadProperties(r, kCtxSubscribe, &sub.properties); !s.ok()) return s;
  }
  // [MQTT-3.8.3-3]: at least one Topic Filter / Subscription Options pair.
  if (r.empty()) return ProtocolError("SUBSCRIBE without topic filters [MQTT-3.8.3-3]");
  while (!r.empty()) {
    Subscription& e = sub.subscriptions.emplace_back();
    if (Status s = ReadString(r, &e.filter); !s.ok()) return s;
    uint8_t opts;
    if (!r.U8(&opts)) return Malformed("missing subscription options");
    e.options.qos = opts & 0x03;
    if (v == ProtocolVersion::kV5) {
      // [MQTT-3.8.3-5]: reserved bits 6-7 MUST be 0.
      if (opts & 0xC0) return Malformed("subscription options reserved bits [MQTT-3.8.3-5]");
      if (e.options.qos == 3) return ProtocolError("subscription QoS 3");
      e.options.no_local = opts & 0x04;
      e.options.retain_as_published = opts & 0x08;
      e.options.retain_handling = (opts >> 4) & 0x03;
      if (e.options.retain_handling == 3) return ProtocolError("Retain Handling 3");
      if (IsSharedSubscription(e.filter)) {
        if (o.validate_subscribe_filters &&
            ParseSharedSubscription(e.filter, o.topic_limits, nullptr) != TopicError::kOk) {
          return {ReasonCode::kTopicFilterInvalid, "invalid shared subscription [MQTT-4.8.2-1]"};
        }
        // [MQTT-3.8.3-4]: No Local on a Shared Subscription is a Protocol Error.
        if (e.options.no_local)
          return ProtocolError("No Local on shared subscription [MQTT-3.8.3-4]");
        continue;
      }
    } else {
      // 3.1.1 [MQTT-3-8.3-4]: reserved bits non-zero or QoS 3 is malformed.
      if ((opts & 0xFC) || e.options.qos == 3) {
        return Malformed("requested QoS byte invalid [MQTT-3-8.3-4]");
      }
    }
    if (o.validate_subscribe_filters &&
        ValidateTopicFilter(e.filter, o.topic_limits) != TopicError::kOk) {
      return {ReasonCode::kTopicFilterInvalid,
              "invalid topic filter [MQTT-4.7.1-1]/[MQTT-4.7.1-2]"};
    }
  }
  return kOk;
}

Status DecodeSuback(Reader& r, ProtocolVersion v, Packet* out) {
  Suback& s = Reset<Suback>(out);
  if (Status st = ReadPacketId(r, &s.packet_id); !st.ok()) return st;
  if (v == ProtocolVersion::kV5) {
    if (Status st = ReadProperties(r, kCtxSuback, &s.properties); !st.ok()) return st;
  }
  if (r.empty()) return ProtocolError("SUBACK without reason codes");
  const CodeSet& valid = v == ProtocolVersion::kV5 ? kSubackCodes : kSuback311Codes;
  while (!r.empty()) {
    uint8_t code;
    r.U8(&code);
    // 3.1.1 [MQTT-3.9.3-2]: only 0x00, 0x01, 0x02 and 0x80.
    if (!valid.Contains(code)) return ProtocolError("invalid SUBACK reason code [MQTT-3.9.3-2]");
    s.reason_codes.push_back(static_cast<ReasonCode>(code));
  }
  return kOk;
}

Status DecodeUnsubscribe(Reader& r, ProtocolVersion v, const DecodeOptions& o, Packet* out) {
  Unsubscribe& u = Reset<Unsubscribe>(out);
  if (Status s = ReadPacketId(r, &u.packet_id); !s.ok()) return s;
  if (v == ProtocolVersion::kV5) {
    if (Status s = ReadProperties(r, kCtxUnsubscribe, &u.properties); !s.ok()) return s;
  }
  // [MQTT-3.10.3-2]: at least one Topic Filter.
  if (r.empty()) return ProtocolError("UNSUBSCRIBE without topic filters [MQTT-3.10.3-2]");
  while (!r.empty()) {
    std::string_view& f = u.topic_filters.emplace_back();
    if (Status s = ReadString(r, &f); !s.ok()) return s;
    const TopicError e = v == ProtocolVersion::kV5 ? ValidateSubscriptionFilter(f, o.topic_limits)
                                                   : ValidateTopicFilter(f, o.topic_limits);
    if (e != TopicError::kOk) return {ReasonCode::kTopicFilterInvalid, "invalid topic filter"};
  }
  return kOk;
}

Status DecodeUnsuback(Reader& r, ProtocolVersion v, Packet* out) {
  Unsuback& u = Reset<Unsuback>(out);
  if (Status s = ReadPacketId(r, &u.packet_id); !s.ok()) return s;
  if (v == ProtocolVersion::kV5) {
    if (Status s = ReadProperties(r, kCtxUnsuback, &u.properties); !s.ok()) return s;
    if (r.empty()) return ProtocolError("UNSUBACK without reason codes");
    while (!r.empty()) {
      uint8_t code;
      r.U8(&code);
      if (!kUnsubackCodes.Contains(code)) return ProtocolError("invalid UNSUBACK reason code");
      u.reason_codes.push_back(static_cast<ReasonCode>(code));
    }
  }
  if (!r.empty()) return Malformed("trailing bytes after UNSUBACK");
  return kOk;
}

// DISCONNECT and AUTH in MQTT 5: remaining length 0 means Success without
// properties; remaining length 1 means a reason code without properties
// (3.14.2.2.1 / 3.15.2.2.1: property length 0 when Remaining Length < 2).
Status DecodeReasonAndProperties(Reader& r, const CodeSet& codes, PropertyContext ctx,
                                 ReasonCode* reason, Properties* props) {
  if (r.empty()) return kOk;
  uint8_t code;
  r.U8(&code);
  if (!codes.Contains(code)) return ProtocolError("invalid reason code");
  *reason = static_cast<ReasonCode>(code);
  if (r.empty()) return kOk;
  if (Status s = ReadProperties(r, ctx, props); !s.ok()) return s;
  if (!r.empty()) return Malformed("trailing bytes after properties");
  return kOk;
}

Status DecodeBody(Reader& r, const FixedHeader& h, const DecodeOptions& o, uint8_t* level,
                  Packet* out) {
  const ProtocolVersion v = o.version;
  switch (h.type) {
    case PacketType::kConnect:
      return DecodeConnect(r, o, level, out);
    case PacketType::kConnack:
      return DecodeConnack(r, v, out);
    case PacketType::kPublish:
      return DecodePublish(r, h, v, o, out);
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp:
      return DecodePubAck(r, h, v, out);
    case PacketType::kSubscribe:
      return DecodeSubscribe(r, v, o, out);
    case PacketType::kSuback:
      return DecodeSuback(r, v, out);
    case PacketType::kUnsubscribe:
      return DecodeUnsubscribe(r, v, o, out);
    case PacketType::kUnsuback:
      return DecodeUnsuback(r, v, out);
    case PacketType::kPingreq:
    case PacketType::kPingresp:
      if (!r.empty()) return Malformed("PINGREQ/PINGRESP with a body");
      if (h.type == PacketType::kPingreq) {
        Reset<PingReq>(out);
      } else {
        Reset<PingResp>(out);
      }
      return kOk;
    case PacketType::kDisconnect: {
      Disconnect& d = Reset<Disconnect>(out);
      if (v != ProtocolVersion::kV5) {
        return r.empty() ? kOk : Malformed("DISCONNECT with a body");
      }
      return DecodeReasonAndProperties(r, kDisconnectCodes, kCtxDisconnect, &d.reason_code,
                                       &d.properties);
    }
    case PacketType::kAuth: {
      Auth& a = Reset<Auth>(out);
      return DecodeReasonAndProperties(r, kAuthCodes, kCtxAuth, &a.reason_code, &a.properties);
    }
  }
  return Malformed("unknown packet type");
}

DecodeResult Error(ReasonCode reason, const char* what, size_t consumed) {
  DecodeResult r;
  r.status = DecodeStatus::kError;
  r.reason = reason;
  r.what = what;
  r.consumed = consumed;
  return r;
}

}  // namespace

DecodeResult DecodeFixedHeader(absl::Span<const uint8_t> input, const DecodeOptions& options,
                               FixedHeader* out) {
  if (input.empty()) return {};
  const uint8_t byte0 = input[0];
  const uint8_t type = byte0 >> 4;
  const uint8_t flags = byte0 & 0x0F;
  const ProtocolVersion v = options.version;
  if (type == 0) return Error(ReasonCode::kMalformedPacket, "reserved packet type 0", 1);
  const auto ptype = static_cast<PacketType>(type);
  if (v == ProtocolVersion::kUnknown && ptype != PacketType::kConnect) {
    return Error(ReasonCode::kProtocolError, "first packet is not CONNECT [MQTT-3.1.0-1]", 1);
  }
  if (ptype == PacketType::kAuth && v != ProtocolVersion::kV5) {
    return Error(ReasonCode::kMalformedPacket, "reserved packet type 15 before MQTT 5", 1);
  }
  switch (ptype) {
    case PacketType::kPublish:
      if (((flags >> 1) & 0x03) == 3) {
        return Error(ReasonCode::kMalformedPacket, "PUBLISH QoS 3 [MQTT-3.3.1-4]", 1);
      }
      if ((flags & 0x08) && ((flags >> 1) & 0x03) == 0) {
        return Error(ReasonCode::kMalformedPacket, "PUBLISH DUP with QoS 0 [MQTT-3.3.1-2]", 1);
      }
      break;
    case PacketType::kPubrel:
    case PacketType::kSubscribe:
    case PacketType::kUnsubscribe:
      // [MQTT-3.6.1-1], [MQTT-3.8.1-1], [MQTT-3.10.1-1]: flags 0b0010. MQTT
      // 3.1 also allowed the DUP bit on retries.
      if (flags != 0x02 && !(v == ProtocolVersion::kV31 && flags == 0x0A)) {
        return Error(ReasonCode::kMalformedPacket, "reserved flags must be 0b0010 [MQTT-2.2.2-2]",
                     1);
      }
      break;
    default:
      if (flags != 0) {
        return Error(ReasonCode::kMalformedPacket, "reserved flags must be 0 [MQTT-2.2.2-2]", 1);
      }
  }
  uint32_t remaining = 0;
  size_t len = 0;
  switch (DecodeVarint(input.data() + 1, input.size() - 1, &remaining, &len)) {
    case VarintStatus::kNeedMore:
      return {};
    case VarintStatus::kMalformed:
      return Error(ReasonCode::kMalformedPacket, "bad remaining length [MQTT-1.5.5-1]",
                   std::min<size_t>(input.size(), 5));
    case VarintStatus::kOk:
      break;
  }
  out->type = ptype;
  out->flags = flags;
  out->remaining_length = remaining;
  out->header_size = static_cast<uint8_t>(1 + len);
  if (out->packet_size() > options.max_packet_size) {
    return Error(ReasonCode::kPacketTooLarge, "packet exceeds maximum packet size",
                 out->header_size);
  }
  DecodeResult r;
  r.status = DecodeStatus::kOk;
  r.consumed = out->header_size;
  return r;
}

DecodeResult DecodePacket(absl::Span<const uint8_t> input, const DecodeOptions& options,
                          Packet* out) {
  FixedHeader h;
  DecodeResult result = DecodeFixedHeader(input, options, &h);
  if (result.status != DecodeStatus::kOk) return result;
  const size_t size = h.packet_size();
  if (input.size() < size) {
    result.status = DecodeStatus::kNeedMore;
    result.consumed = 0;
    return result;
  }
  Reader r(input.data() + h.header_size, h.remaining_length);
  uint8_t level = 0;
  const Status s = DecodeBody(r, h, options, &level, out);
  // Field by field into the returned object: assigning a whole DecodeResult
  // built on another path made GCC assemble it bytewise on the stack and copy
  // it out with 16-byte loads, a store-forwarding stall on every packet that
  // was a third of the decoder's time (perf annotate).
  if (!s.ok()) {
    result.status = DecodeStatus::kError;
    result.reason = s.reason;
    result.what = s.what;
  }
  result.consumed = size;
  result.protocol_level = level;
  return result;
}

}  // namespace shardmq::mqtt
