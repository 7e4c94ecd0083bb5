// A minimal blocking MQTT client for tests of the embedding API: encodes
// with src/mqtt, reads with a timeout, and hands back decoded packets as
// owned copies (the decoder's views die with its buffer).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/packet.h"

namespace shardmq::testing {

// What the broker sent, copied out of the wire.
struct Received {
  mqtt::PacketType type = mqtt::PacketType::kConnect;
  uint8_t code = 0;  // CONNACK return/reason code, ack reason code
  bool session_present = false;
  uint16_t packet_id = 0;
  std::vector<uint8_t> codes;  // SUBACK / UNSUBACK
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
  std::vector<std::pair<std::string, std::string>> user_properties;
  // CONNACK (MQTT 5): what the broker advertised.
  std::optional<uint32_t> maximum_packet_size;
  std::optional<uint8_t> maximum_qos;
};

class TestClient {
 public:
  explicit TestClient(mqtt::ProtocolVersion version) : version_(version) {}
  ~TestClient() {
    if (fd_ >= 0) ::close(fd_);
  }

  // `source`: the local IPv4 address to connect from ("127.0.0.2"; any
  // 127/8 address is loopback), for tests of per-address limits.
  bool Open(uint16_t port, const char* source = nullptr) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (source != nullptr) {
      sockaddr_in local{};
      local.sin_family = AF_INET;
      inet_pton(AF_INET, source, &local.sin_addr);
      if (::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) return false;
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }

  // Connects to a unix-domain socket at `path`.
  bool OpenUnix(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof(addr.sun_path)) return false;
    std::memcpy(addr.sun_path, path.data(), path.size());
    return ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }

  // Bytes as they are (a PROXY protocol header, say).
  void SendRaw(std::string_view bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t r = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (r <= 0) return;
      sent += static_cast<size_t>(r);
    }
  }

  void Send(const mqtt::Packet& packet) {
    std::vector<uint8_t> bytes(mqtt::EncodedSize(packet, version_));
    size_t n = mqtt::Encode(packet, version_, absl::MakeSpan(bytes));
    size_t sent = 0;
    while (sent < n) {
      ssize_t r = ::send(fd_, bytes.data() + sent, n - sent, MSG_NOSIGNAL);
      if (r <= 0) return;
      sent += static_cast<size_t>(r);
    }
  }

  // CONNECT and the CONNACK's code (return code for 3.x, reason for 5);
  // nullopt when the broker closed without answering.
  std::optional<uint8_t> Connect(std::string_view client_id,
                                 std::optional<std::string_view> username = std::nullopt,
                                 std::optional<std::string_view> password = std::nullopt,
                                 bool clean_start = true,
                                 std::optional<mqtt::Will> will = std::nullopt,
                                 uint32_t session_expiry = 0) {
    mqtt::Connect connect;
    connect.version = version_;
    connect.client_id = client_id;
    connect.username = username;
    connect.clean_start = clean_start;
    connect.keep_alive = 60;
    connect.will = will;
    if (password) {
      connect.password = absl::Span<const uint8_t>(
          reinterpret_cast<const uint8_t*>(password->data()), password->size());
    }
    if (version_ == mqtt::ProtocolVersion::kV5 && session_expiry > 0) {
      connect.properties.session_expiry_interval = session_expiry;
    }
    Send(connect);
    std::optional<Received> connack = Next();
    if (!connack || connack->type != mqtt::PacketType::kConnack) return std::nullopt;
    session_present_ = connack->session_present;
    connack_ = *connack;
    return connack->code;
  }

  std::optional<Received> Subscribe(std::string_view filter, uint8_t qos, uint16_t id = 1) {
    mqtt::Subscribe subscribe;
    subscribe.packet_id = id;
    subscribe.subscriptions.push_back({filter, {qos}});
    Send(subscribe);
    return NextOf(mqtt::PacketType::kSuback);
  }

  std::optional<Received> Unsubscribe(std::string_view filter, uint16_t id = 2) {
    mqtt::Unsubscribe unsubscribe;
    unsubscribe.packet_id = id;
    unsubscribe.topic_filters.push_back(filter);
    Send(unsubscribe);
    return NextOf(mqtt::PacketType::kUnsuback);
  }

  // PUBLISH; for QoS 1/2 returns the PUBACK/PUBREC.
  std::optional<Received> Publish(std::string_view topic, std::string_view payload, uint8_t qos,
                                  bool retain = false, uint16_t id = 10) {
    mqtt::Publish publish;
    publish.topic = topic;
    publish.payload =
        absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
    publish.qos = qos;
    publish.retain = retain;
    publish.packet_id = qos > 0 ? id : 0;
    Send(publish);
    if (qos == 0) return Received{};
    return NextOf(qos == 1 ? mqtt::PacketType::kPuback : mqtt::PacketType::kPubrec);
  }

  void Disconnect() { Send(mqtt::Disconnect{}); }

  // The next packet of `type`, skipping others (kept for later).
  std::optional<Received> NextOf(mqtt::PacketType type, int timeout_ms = 3000) {
    for (auto it = held_.begin(); it != held_.end(); ++it) {
      if (it->type == type) {
        Received r = std::move(*it);
        held_.erase(it);
        return r;
      }
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      const int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                            deadline - std::chrono::steady_clock::now())
                                            .count());
      std::optional<Received> r = Next(std::max(left, 1));
      if (!r) return std::nullopt;
      if (r->type == type) return r;
      held_.push_back(std::move(*r));
    }
    return std::nullopt;
  }

  // The next packet, or nullopt on timeout or close.
  std::optional<Received> Next(int timeout_ms = 3000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      mqtt::DecodeOptions options;
      options.version = version_;
      mqtt::Packet packet;
      mqtt::DecodeResult result =
          mqtt::DecodePacket(absl::MakeConstSpan(buffer_), options, &packet);
      if (result.status == mqtt::DecodeStatus::kOk) {
        Received r = Copy(packet);
        buffer_.erase(buffer_.begin(), buffer_.begin() + result.consumed);
        return r;
      }
      if (result.status == mqtt::DecodeStatus::kError) return std::nullopt;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
      uint8_t chunk[4096];
      ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
      if (n <= 0) {
        closed_ = true;
        return std::nullopt;
      }
      buffer_.insert(buffer_.end(), chunk, chunk + n);
    }
  }

  // True when the broker closes the connection within the time.
  bool WaitClosed(int timeout_ms = 3000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!closed_ && std::chrono::steady_clock::now() < deadline) Next(50);
    return closed_;
  }

  bool session_present() const { return session_present_; }
  // The last CONNACK Connect() read.
  const Received& connack() const { return connack_; }

 private:
  Received Copy(const mqtt::Packet& packet) const {
    Received r;
    r.type = mqtt::GetPacketType(packet);
    auto copy_props = [&r](const mqtt::Properties& p) {
      for (const auto& [k, v] : p.user_properties) r.user_properties.emplace_back(k, v);
    };
    if (auto* c = std::get_if<mqtt::Connack>(&packet)) {
      r.code = version_ == mqtt::ProtocolVersion::kV5 ? static_cast<uint8_t>(c->reason_code)
                                                      : static_cast<uint8_t>(c->return_code);
      r.session_present = c->session_present;
      r.maximum_packet_size = c->properties.maximum_packet_size;
      r.maximum_qos = c->properties.maximum_qos;
    } else if (auto* p = std::get_if<mqtt::Publish>(&packet)) {
      r.topic = std::string(p->topic);
      r.payload = std::string(reinterpret_cast<const char*>(p->payload.data()), p->payload.size());
      r.qos = p->qos;
      r.retain = p->retain;
      r.packet_id = p->packet_id;
      copy_props(p->properties);
    } else if (auto* a = std::get_if<mqtt::PubAck>(&packet)) {
      r.code = static_cast<uint8_t>(a->reason_code);
      r.packet_id = a->packet_id;
    } else if (auto* s = std::get_if<mqtt::Suback>(&packet)) {
      r.packet_id = s->packet_id;
      for (auto c : s->reason_codes) r.codes.push_back(static_cast<uint8_t>(c));
    } else if (auto* u = std::get_if<mqtt::Unsuback>(&packet)) {
      r.packet_id = u->packet_id;
      for (auto c : u->reason_codes) r.codes.push_back(static_cast<uint8_t>(c));
    } else if (auto* d = std::get_if<mqtt::Disconnect>(&packet)) {
      r.code = static_cast<uint8_t>(d->reason_code);
    }
    return r;
  }

  mqtt::ProtocolVersion version_;
  int fd_ = -1;
  std::vector<uint8_t> buffer_;
  std::vector<Received> held_;
  bool closed_ = false;
  bool session_present_ = false;
  Received connack_;
};

}  // namespace shardmq::testing
