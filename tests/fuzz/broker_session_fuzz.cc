// libFuzzer target for the broker's per-connection state machine: the input
// is not bytes for the decoder but a script of client actions (connect with
// varied versions, flags and properties; publish, subscribe, unsubscribe,
// acknowledge, ping, disconnect, authenticate, reconnect, raw garbage) played
// over up to three real TCP connections against one in-process Broker with
// three shards. Packets are made with our own encoder, so most are well
// formed and reach deep into the broker (takeover, session resume, shared
// subscriptions, aliases, QoS 2 flows), while raw chunks cover the rest.
//
// What fails a run: anything ASan/UBSan reports in the broker (it runs in
// this process), a crash, or a broker that no longer answers a fresh
// client's CONNECT and PINGREQ after the script (a wedged shard).
//
// Built only with -Dfuzz=true and clang; the whole fuzz build is compiled
// with -fsanitize=fuzzer-no-link (tools/test) so coverage reaches the broker.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "mqtt/encoder.h"
#include "mqtt/packet.h"
#include "shardmq/broker.h"

namespace {

using namespace shardmq::mqtt;

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "broker_session_fuzz: %s\n", what);
  std::abort();
}

// Reads the script; past the end every read is 0.
class Script {
 public:
  Script(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool done() const { return pos_ >= size_; }
  uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint16_t Short() { return static_cast<uint16_t>(Byte() << 8 | Byte()); }
  std::string Bytes(size_t max) {
    size_t n = std::min<size_t>(Byte() % (max + 1), size_ - std::min(pos_, size_));
    std::string out(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return out;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Names that make sessions collide (takeover, resume) and filters that
// overlap, share and use every wildcard form.
constexpr std::array<const char*, 4> kClientIds = {"a", "b", "c", ""};
constexpr std::array<const char*, 8> kTopics = {"a", "a/b", "a/b/c", "$SYS/x",
                                                "b", "",    "a/+",   "x/y/z/w"};
constexpr std::array<const char*, 8> kFilters = {"a/#",        "+/b", "#",      "$share/g/a/#",
                                                 "$share/h/#", "a/b", "$SYS/#", "a/+/c"};

struct Broker {
  std::unique_ptr<shardmq::Broker> broker;
  uint16_t port = 0;
};

Broker& TheBroker() {
  static Broker* instance = [] {
    auto* b = new Broker;
    shardmq::Options options;
    options.shards = 3;
    options.listeners = {"127.0.0.1:0"};
    options.limits.max_packet_size = 4096;
    options.limits.max_inflight = 4;
    options.limits.max_queued_messages = 16;
    options.limits.connect_timeout_ms = 500;
    options.limits.topic_alias_maximum = 4;
    auto created = shardmq::Broker::Create(options);
    if (!created.ok()) Fail("cannot create the broker");
    b->broker = *std::move(created);
    if (!b->broker->Start().ok()) Fail("cannot start the broker");
    const std::string address = b->broker->BoundAddresses().front();
    b->port = static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
    return b;
  }();
  return *instance;
}

int Dial(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Fail("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) Fail("connect");
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

// Sends what it can without blocking for long: a broker that closed the
// connection (the point of many scripts) makes sends fail, which is fine.
void SendAll(int fd, const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n <= 0) return;
    sent += static_cast<size_t>(n);
  }
}

// Reads and discards whatever the broker sent within `ms`.
void Drain(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  char buf[4096];
  while (::poll(&p, 1, ms) > 0) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n <= 0) return;
    ms = 0;
  }
}

std::string Encoded(const Packet& packet, ProtocolVersion version) {
  std::string out(EncodedSize(packet, version), '\0');
  if (out.empty()) return out;
  size_t n =
      Encode(packet, version, absl::MakeSpan(reinterpret_cast<uint8_t*>(out.data()), out.size()));
  out.resize(n);
  return out;
}

ProtocolVersion VersionFrom(uint8_t b) {
  switch (b % 3) {
    case 0:
      return ProtocolVersion::kV31;
    case 1:
      return ProtocolVersion::kV311;
    default:
      return ProtocolVersion::kV5;
  }
}

struct Conn {
  int fd = -1;
  ProtocolVersion version = ProtocolVersion::kV5;
};

void PlayOne(Script& s, std::array<Conn, 3>& conns, uint16_t port) {
  const uint8_t op = s.Byte();
  Conn& c = conns[(op >> 4) % conns.size()];
  if (c.fd < 0 && (op & 0x0F) != 0) return;  // most actions need a connection
  std::string strings[3];                    // storage for views in packets
  switch (op & 0x0F) {
    case 0: {  // (re)connect
      if (c.fd >= 0) ::close(c.fd);
      c.fd = Dial(port);
      Connect connect;
      c.version = connect.version = VersionFrom(s.Byte());
      const uint8_t flags = s.Byte();
      connect.client_id = kClientIds[flags % kClientIds.size()];
      if (connect.version == ProtocolVersion::kV31 && connect.client_id.empty()) {
        connect.client_id = "z";
      }
      connect.clean_start = flags & 0x04;
      connect.keep_alive = (flags & 0x08) ? 1 : 60;
      if (flags & 0x10) {
        Will will;
        will.topic = kTopics[s.Byte() % 5];
        strings[0] = s.Bytes(16);
        will.payload = absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(strings[0].data()),
                                           strings[0].size());
        will.qos = s.Byte() % 3;
        will.retain = flags & 0x20;
        if (connect.version == ProtocolVersion::kV5 && (flags & 0x40)) {
          will.properties.will_delay_interval = s.Byte() % 3;
          will.properties.message_expiry_interval = s.Byte() % 3;
        }
        connect.will = will;
      }
      if (connect.version == ProtocolVersion::kV5) {
        const uint8_t p = s.Byte();
        if (p & 0x01) connect.properties.session_expiry_interval = p & 0x02 ? 0xFFFFFFFF : 1;
        if (p & 0x04) connect.properties.receive_maximum = 1 + (p >> 6);
        if (p & 0x08) connect.properties.topic_alias_maximum = 2;
        if (p & 0x10) connect.properties.maximum_packet_size = 64;
        if (p & 0x20) connect.properties.authentication_method = "none";
        if (p & 0x40) connect.properties.request_problem_information = 0;
      }
      SendAll(c.fd, Encoded(connect, connect.version));
      return;
    }
    case 1:
    case 2: {  // publish
      Publish publish;
      const uint8_t flags = s.Byte();
      publish.topic = kTopics[flags % kTopics.size()];
      strings[0] = s.Bytes(32);
      publish.payload = absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(strings[0].data()),
                                            strings[0].size());
      publish.qos = (flags >> 3) % 3;
      publish.retain = flags & 0x20;
      publish.dup = flags & 0x40;
      if (publish.qos > 0) publish.packet_id = 1 + s.Byte() % 8;
      if (c.version == ProtocolVersion::kV5) {
        const uint8_t p = s.Byte();
        if (p & 0x01) publish.properties.topic_alias = 1 + (p >> 5);
        if (p & 0x02) publish.properties.message_expiry_interval = p >> 6;
        if (p & 0x04) publish.properties.payload_format_indicator = 1;
        if (p & 0x08) publish.properties.user_properties.emplace_back("k", "v");
        if (p & 0x10) publish.properties.response_topic = "r";
      }
      SendAll(c.fd, Encoded(publish, c.version));
      return;
    }
    case 3: {  // subscribe
      Subscribe subscribe;
      subscribe.packet_id = 1 + s.Byte() % 8;
      const uint8_t count = 1 + s.Byte() % 3;
      for (uint8_t i = 0; i < count; ++i) {
        const uint8_t o = s.Byte();
        Subscription entry;
        entry.filter = kFilters[o % kFilters.size()];
        entry.options.qos = (o >> 3) % 3;
        if (c.version == ProtocolVersion::kV5) {
          entry.options.no_local = o & 0x20;
          entry.options.retain_as_published = o & 0x40;
          entry.options.retain_handling = (o >> 7) + (s.Byte() & 1);
        }
        subscribe.subscriptions.push_back(entry);
      }
      if (c.version == ProtocolVersion::kV5 && (s.Byte() & 1)) {
        subscribe.properties.subscription_identifiers.push_back(1 + s.Byte());
      }
      SendAll(c.fd, Encoded(subscribe, c.version));
      return;
    }
    case 4: {  // unsubscribe
      Unsubscribe unsubscribe;
      unsubscribe.packet_id = 1 + s.Byte() % 8;
      unsubscribe.topic_filters.push_back(kFilters[s.Byte() % kFilters.size()]);
      SendAll(c.fd, Encoded(unsubscribe, c.version));
      return;
    }
    case 5:
    case 6: {  // acknowledgements, in any order and for any id
      PubAck ack;
      static constexpr PacketType kTypes[] = {PacketType::kPuback, PacketType::kPubrec,
                                              PacketType::kPubrel, PacketType::kPubcomp};
      const uint8_t b = s.Byte();
      ack.type = kTypes[b % 4];
      ack.packet_id = 1 + (b >> 2) % 8;
      SendAll(c.fd, Encoded(ack, c.version));
      return;
    }
    case 7:
      SendAll(c.fd, Encoded(PingReq{}, c.version));
      return;
    case 8: {  // disconnect, sometimes with a will or a new session expiry
      Disconnect disconnect;
      const uint8_t b = s.Byte();
      if (c.version == ProtocolVersion::kV5) {
        disconnect.reason_code =
            b & 1 ? ReasonCode::kDisconnectWithWillMessage : ReasonCode::kNormalDisconnection;
        if (b & 2) disconnect.properties.session_expiry_interval = b >> 4;
      }
      SendAll(c.fd, Encoded(disconnect, c.version));
      return;
    }
    case 9: {  // AUTH (MQTT 5 only has it; the broker must refuse it sanely)
      Auth auth;
      auth.reason_code =
          s.Byte() & 1 ? ReasonCode::kReAuthenticate : ReasonCode::kContinueAuthentication;
      auth.properties.authentication_method = "none";
      SendAll(c.fd, Encoded(auth, ProtocolVersion::kV5));
      return;
    }
    case 10:
    case 11:  // raw bytes: garbage, half packets, a second CONNECT's prefix
      SendAll(c.fd, s.Bytes(48));
      return;
    case 12:  // read what the broker sent so far (lets flows progress)
      Drain(c.fd, 2);
      return;
    case 13:  // drop the connection without DISCONNECT (will, redelivery)
      ::close(c.fd);
      c.fd = -1;
      return;
    default:
      return;
  }
}

// A fresh client must still get CONNACK and PINGRESP: no shard is wedged.
void CheckAlive(uint16_t port) {
  int fd = Dial(port);
  Connect connect;
  connect.version = ProtocolVersion::kV311;
  connect.client_id = "probe";
  std::string bytes = Encoded(connect, connect.version) + Encoded(PingReq{}, connect.version);
  SendAll(fd, bytes);
  // CONNACK (4 bytes) then PINGRESP (2 bytes).
  char buf[16];
  size_t got = 0;
  pollfd p{fd, POLLIN, 0};
  while (got < 6 && ::poll(&p, 1, 5000) > 0) {
    ssize_t n = ::recv(fd, buf + got, sizeof(buf) - got, 0);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  if (got < 6 || static_cast<uint8_t>(buf[0]) != 0x20 || static_cast<uint8_t>(buf[4]) != 0xD0) {
    Fail("the broker stopped answering a fresh client");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 512) return 0;  // long scripts only repeat what short ones do
  Broker& broker = TheBroker();
  Script script(data, size);
  std::array<Conn, 3> conns;
  int steps = 0;
  while (!script.done() && steps++ < 64) PlayOne(script, conns, broker.port);
  for (Conn& c : conns) {
    if (c.fd < 0) continue;
    Drain(c.fd, 1);
    ::close(c.fd);
  }
  CheckAlive(broker.port);
  return 0;
}
