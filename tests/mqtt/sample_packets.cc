// Sample packets: chosen to touch every field and every property at least
// once, and every short form of the MQTT 5 acknowledgements.
#include "sample_packets.h"

#include <cstdint>

namespace shardmq::mqtt::testing {
namespace {

constexpr uint8_t kPayload64[64] = {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', 0,   1,
                                    2,   3,   4,   5,   6,   7,   8,   9,   10,  11,  12,  13,  14,
                                    15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25,  26,  27,
                                    28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,
                                    41,  42,  43,  44,  45,  46,  47,  48,  49,  50,  51,  0xFF};
constexpr uint8_t kSecret[] = {'s', 'e', 'c', 'r', 'e', 't', 0x00, 0xFF};
constexpr uint8_t kCorrelation[] = {0xDE, 0xAD, 0xBE, 0xEF};
constexpr uint8_t kAuthData[] = {1, 2, 3, 4, 5};
constexpr uint8_t kWillPayload[] = {'o', 'f', 'f', 'l', 'i', 'n', 'e'};

absl::Span<const uint8_t> S(const uint8_t* p, size_t n) { return absl::Span<const uint8_t>(p, n); }
template <size_t N>
absl::Span<const uint8_t> S(const uint8_t (&a)[N]) {
  return absl::Span<const uint8_t>(a, N);
}

Properties ConnectProps() {
  Properties p;
  p.session_expiry_interval = 3600;
  p.receive_maximum = 100;
  p.maximum_packet_size = 1 << 20;
  p.topic_alias_maximum = 10;
  p.request_response_information = 1;
  p.request_problem_information = 0;
  p.authentication_method = "SCRAM-SHA-1";
  p.authentication_data = S(kAuthData);
  p.user_properties.emplace_back("region", "eu");
  p.user_properties.emplace_back("region", "us");  // Keys may repeat.
  return p;
}

Properties WillProps() {
  Properties p;
  p.will_delay_interval = 30;
  p.payload_format_indicator = 1;
  p.message_expiry_interval = 120;
  p.content_type = "text/plain";
  p.response_topic = "replies/client-1";
  p.correlation_data = S(kCorrelation);
  p.user_properties.emplace_back("k", "v");
  return p;
}

Properties ConnackProps() {
  Properties p;
  p.session_expiry_interval = 0;
  p.receive_maximum = 65535;
  p.maximum_qos = 1;
  p.retain_available = 1;
  p.maximum_packet_size = 268435460;
  p.assigned_client_identifier = "auto-1F3A";
  p.topic_alias_maximum = 16;
  p.reason_string = "welcome";
  p.user_properties.emplace_back("node", "a");
  p.wildcard_subscription_available = 1;
  p.subscription_identifier_available = 0;
  p.shared_subscription_available = 1;
  p.server_keep_alive = 60;
  p.response_information = "replies/";
  p.server_reference = "other.example.com:1883";
  p.authentication_method = "SCRAM-SHA-1";
  p.authentication_data = S(kAuthData);
  return p;
}

Properties PublishProps() {
  Properties p;
  p.payload_format_indicator = 0;
  p.message_expiry_interval = 60;
  p.topic_alias = 3;
  p.response_topic = "replies/x";
  p.correlation_data = S(kCorrelation);
  p.user_properties.emplace_back("trace-id", "0af7651916cd43dd");
  p.user_properties.emplace_back("a", "");
  p.user_properties.emplace_back("b", "c");  // Third: spills to the heap.
  p.subscription_identifiers = {1, 268435455};
  p.content_type = "application/octet-stream";
  return p;
}

Properties ReasonProps(const char* why) {
  Properties p;
  p.reason_string = why;
  p.user_properties.emplace_back("x", "y");
  return p;
}

}  // namespace

std::vector<SamplePacket> SamplePackets(ProtocolVersion v) {
  const bool v5 = v == ProtocolVersion::kV5;
  std::vector<SamplePacket> out;
  auto add = [&](std::string name, Packet p) { out.push_back({std::move(name), std::move(p)}); };

  {
    Connect c;
    c.version = v;
    c.client_id = "client-1";
    c.keep_alive = 60;
    add("connect_minimal", c);
    c.clean_start = false;
    c.keep_alive = 0;
    c.username = "user";
    c.password = S(kSecret);
    Will w;
    w.topic = "clients/client-1/status";
    w.payload = S(kWillPayload);
    w.qos = 1;
    w.retain = true;
    if (v5) w.properties = WillProps();
    c.will = w;
    if (v5) c.properties = ConnectProps();
    add("connect_full", c);
    c.will->qos = 2;
    c.will->retain = false;
    c.password.reset();
    add("connect_will_qos2_user_only", c);
    if (v != ProtocolVersion::kV5) {
      Connect b;
      b.version = v;
      b.bridge = true;
      b.client_id = "bridge-1";
      b.keep_alive = 30;
      add("connect_bridge", b);
    }
    if (v == ProtocolVersion::kV5) {
      Connect e;
      e.version = v;
      e.client_id = "";  // Server assigns an identifier.
      Connect pw = e;
      pw.password = S(kSecret);  // Allowed without user name in 5.0.
      add("connect_empty_client_id", e);
      add("connect_password_only", pw);
    }
    if (v == ProtocolVersion::kV311) {
      Connect e;
      e.version = v;
      e.client_id = "";
      add("connect_empty_client_id_clean", e);
    }
  }
  {
    Connack c;
    add("connack_accepted", c);
    if (v != ProtocolVersion::kV31) {
      c.session_present = true;
      add("connack_session_present", c);
    }
    Connack refused;
    if (v5) {
      refused.reason_code = ReasonCode::kNotAuthorized;
    } else {
      refused.return_code = ConnectReturnCode::kNotAuthorized;
    }
    add("connack_refused", refused);
    if (v5) {
      Connack full;
      full.session_present = true;
      full.properties = ConnackProps();
      add("connack_props", full);
    }
  }
  {
    Publish p;
    p.topic = "sensors/room1/temperature";
    p.payload = S(kPayload64);
    add("publish_qos0", p);
    p.qos = 1;
    p.packet_id = 1;
    p.retain = true;
    add("publish_qos1_retain", p);
    p.qos = 2;
    p.packet_id = 65535;
    p.dup = true;
    p.retain = false;
    add("publish_qos2_dup", p);
    Publish empty;
    empty.topic = "a";
    add("publish_empty_payload", empty);
    Publish utf;
    utf.topic = "caf\xC3\xA9/\xF0\xAA\x9B\x94/\xEF\xBB\xBF";  // é, U+2A6D4, U+FEFF.
    utf.qos = 1;
    utf.packet_id = 258;
    utf.payload = S(kPayload64, 3);
    add("publish_utf8_topic", utf);
    if (v5) {
      Publish pp = p;
      pp.properties = PublishProps();
      add("publish_qos2_props", pp);
      Publish alias;
      alias.topic = "";
      alias.properties.topic_alias = 7;
      alias.payload = S(kPayload64);
      add("publish_alias_only", alias);
    }
  }
  for (PacketType t :
       {PacketType::kPuback, PacketType::kPubrec, PacketType::kPubrel, PacketType::kPubcomp}) {
    const std::string n = PacketTypeName(t);
    PubAck a;
    a.type = t;
    a.packet_id = 42;
    add(n + "_success", a);
    if (v5) {
      const bool rel = t == PacketType::kPubrel || t == PacketType::kPubcomp;
      a.reason_code =
          rel ? ReasonCode::kPacketIdentifierNotFound : ReasonCode::kNoMatchingSubscribers;
      add(n + "_reason_only", a);
      a.properties = ReasonProps("because");
      add(n + "_reason_props", a);
      PubAck sp;
      sp.type = t;
      sp.packet_id = 7;
      sp.properties.user_properties.emplace_back("only", "props");
      add(n + "_success_props", sp);
    }
  }
  {
    Subscribe s;
    s.packet_id = 10;
    s.subscriptions.push_back({"a/b", {}});
    add("subscribe_one", s);
    s.subscriptions.push_back({"sensors/+/temperature", {.qos = 1}});
    s.subscriptions.push_back({"#", {.qos = 2}});
    s.subscriptions.push_back({"$SYS/broker/+", {.qos = 0}});
    s.subscriptions.push_back({"/+/", {.qos = 1}});
    if (v5) {
      s.subscriptions.push_back(
          {"x/y", {.qos = 1, .no_local = true, .retain_as_published = true, .retain_handling = 2}});
      s.subscriptions.push_back({"$share/group1/sensors/#", {.qos = 2, .retain_handling = 1}});
      s.properties.subscription_identifiers.push_back(12345);
      s.properties.user_properties.emplace_back("k", "v");
    }
    add("subscribe_many", s);
  }
  {
    Suback s;
    s.packet_id = 10;
    s.reason_codes = {ReasonCode::kGrantedQos0, ReasonCode::kGrantedQos1, ReasonCode::kGrantedQos2,
                      ReasonCode::kUnspecifiedError};
    if (v5) {
      s.reason_codes.push_back(ReasonCode::kTopicFilterInvalid);
      s.reason_codes.push_back(ReasonCode::kSharedSubscriptionsNotSupported);
      s.properties = ReasonProps("partial");
    }
    add("suback", s);
  }
  {
    Unsubscribe u;
    u.packet_id = 11;
    u.topic_filters = {"a/b", "sensors/+/temperature", "#"};
    if (v5) {
      u.topic_filters.push_back("$share/g/a/#");
      u.properties.user_properties.emplace_back("k", "v");
    }
    add("unsubscribe", u);
  }
  {
    Unsuback u;
    u.packet_id = 11;
    if (v5) {
      u.reason_codes = {ReasonCode::kSuccess, ReasonCode::kNoSubscriptionExisted,
                        ReasonCode::kNotAuthorized};
      u.properties = ReasonProps("done");
    }
    add("unsuback", u);
  }
  add("pingreq", PingReq{});
  add("pingresp", PingResp{});
  add("disconnect", Disconnect{});
  if (v5) {
    Disconnect d;
    d.reason_code = ReasonCode::kDisconnectWithWillMessage;
    add("disconnect_reason_only", d);
    d.reason_code = ReasonCode::kServerMoved;
    d.properties.reason_string = "moving";
    d.properties.server_reference = "b.example.com";
    d.properties.session_expiry_interval = 0;
    d.properties.user_properties.emplace_back("k", "v");
    add("disconnect_props", d);
    Disconnect dp;
    dp.properties.session_expiry_interval = 10;
    add("disconnect_success_props", dp);

    add("auth_success", Auth{});
    Auth a;
    a.reason_code = ReasonCode::kContinueAuthentication;
    a.properties.authentication_method = "SCRAM-SHA-1";
    a.properties.authentication_data = S(kAuthData);
    a.properties.reason_string = "step 2";
    add("auth_continue", a);
    Auth r;
    r.reason_code = ReasonCode::kReAuthenticate;
    add("auth_reauth_reason_only", r);
  }
  return out;
}

}  // namespace shardmq::mqtt::testing
