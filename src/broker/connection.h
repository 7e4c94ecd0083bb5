// One client's network connection as the broker sees it: protocol state,
// decoder, keep-alive and will. The transport (socket, buffers) belongs to the
// shard runtime; this object is found through Shard::UserData(ConnId).
//
// Lifecycle and thread: created in BrokerShard::OnOpen on the shard that
// accepted (or was handed) the socket, destroyed in OnClosed on that shard.
// Touched only by that shard's thread.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "broker/message.h"
#include "broker/publish_throttle.h"
#include "broker/will.h"
#include "mqtt/protocol_version.h"
#include "mqtt/stream_decoder.h"
#include "shard/reactor.h"
#include "shardmq/hooks.h"

namespace shardmq::broker {

struct Session;

struct AuthState;  // handle_auth.cc

struct Connection {
  // `scratch`: the shard's one decode Packet (see StreamDecoder).
  Connection(const mqtt::DecodeOptions& options, mqtt::Packet* scratch);
  ~Connection();  // out of line: AuthState is complete only in handle_auth.cc

  enum class State : uint8_t {
    kAwaitingConnect,  // nothing but CONNECT is acceptable [MQTT-3.1.0-1]
    // CONNECT named an Authentication Method; only AUTH and DISCONNECT are
    // acceptable until the exchange ends in CONNACK (handle_auth.cc).
    kAuthenticating,
    // An authentication hook deferred its answer (ConnectRequest::Defer):
    // reading is paused and what arrives meanwhile is held.
    kAuthPending,
    // --cluster-redis: the client id is being claimed from the other nodes
    // (cluster_sessions.cc); held like kAuthPending.
    kClaimPending,
    kConnected,
    kClosing,  // the broker decided to close; further input is ignored
  };

  // Small fields first, packed beside `id`: with the pointers and the
  // decoder below, an idle connection takes 224 bytes, all of mimalloc's
  // 224-byte size class (a field more moves it up to the 256-byte one).
  // Whatever only some clients need lives in `extras`.
  shard::ConnId id;
  State state = State::kAwaitingConnect;
  mqtt::ProtocolVersion version = mqtt::ProtocolVersion::kUnknown;
  // MQTT 5 Request Problem Information: when false, no Reason String or User
  // Property on packets other than PUBLISH, CONNACK and DISCONNECT
  // [MQTT-3.1.2-29].
  bool problem_information : 1 = true;
  // Reading is paused because congested subscribers asked (back-pressure)
  // or the client publishes faster than its limit (throttle->holding).
  bool reading_paused : 1 = false;
  // Paused because the cluster's buffer towards RabbitMQ is filling
  // (BrokerShard::PauseForCluster).
  bool cluster_paused : 1 = false;
  // Why the connection ends, for Hooks::OnClientDisconnected; set by whoever
  // decides to close (default: the peer went away).
  DisconnectReason disconnect_reason = DisconnectReason::kConnectionLost;
  // Keep Alive in force, in seconds (the client's, or Server Keep Alive);
  // 0 turns the check off.
  uint16_t keep_alive = 0;
  // The address family of `peer_address` (AF_INET or AF_INET6), or 0 for
  // any other peer, whose text is in extras->peer_text ("unix" if none).
  uint8_t peer_family = 0;

  mqtt::StreamDecoder decoder;
  Session* session = nullptr;
  // Publish rate limits; nullptr when none applies to this client.
  std::unique_ptr<PublishThrottle> throttle;
  shard::Clock::time_point last_packet{};
  // The connect timeout until CONNECT is handled (BrokerShard::OnOpen), then
  // the keep-alive check (BrokerShard::ArmKeepAlive): never both at once.
  shard::TimerId timer;

  // What an MQTT 5 client's CONNECT asked of us (defaults for 3.x): the
  // largest packet it accepts [MQTT-3.1.2-24], how many QoS 1/2 PUBLISH it
  // takes unacknowledged (Receive Maximum, [MQTT-3.3.4-9]) and how many
  // topic aliases we may define towards it [MQTT-3.1.2-26, -27].
  uint32_t client_max_packet_size = UINT32_MAX;
  uint16_t client_receive_maximum = 65535;
  uint16_t client_topic_alias_maximum = 0;

  // What our CONNACK told the client (MQTT 5; 3.x clients were told nothing
  // but are held to the same values for one rule for all): the limits in
  // force when it connected. They bind it for the connection's life, even
  // when Broker::SetLimits changes them meanwhile: a client must never be
  // held to a value it was not told (MQTT 5 section 3.2.2.3). The Maximum
  // Packet Size lives in the decoder's options.
  struct Advertised {
    uint16_t receive_maximum = 65535;
    uint16_t topic_alias_maximum = 0;
    uint8_t max_qos = 2;
    bool retain_available = true;
  };
  Advertised advertised;

  // The client's address and port in network order (peer_family says
  // which): 18 bytes where text took 32, and a heap block more for most
  // addresses. Peer() formats it for logs and hooks.
  struct PeerAddress {
    std::array<uint8_t, 16> address{};  // IPv4 in the first 4
    uint16_t port = 0;
  };
  PeerAddress peer_address;
  // "1.2.3.4:5678", "[::1]:5678", "unix", as shard::PeerInfo::ToString.
  std::string Peer() const;
  void SetPeer(const shard::PeerInfo& peer);

  // kAuthPending and kClaimPending only: the CONNECT to carry on with and
  // the bytes after it.
  struct HeldConnect {
    std::string connect;
    std::string input;
    ClientLimits limits;  // as the hooks set them before deferring
  };

  // Topic aliases, which live as long as this network connection
  // [MQTT-3.3.2-7]; allocated on first use.
  struct TopicAliases {
    // Client to server: alias -> topic, up to our Topic Alias Maximum.
    absl::flat_hash_map<uint16_t, std::string> inbound;
    // Server to client: topic -> alias, up to client_topic_alias_maximum.
    absl::flat_hash_map<std::string, uint16_t> outbound;
  };

  // What most connections never need, allocated on first use (Extra()):
  // each would cost every idle client 8 bytes or more.
  struct Extras {
    Extras();
    ~Extras();  // out of line: AuthState is complete only in handle_auth.cc

    // Raw bytes of a CONNECT split over several reads, until it is whole:
    // they travel along if the connection moves to its client id's home
    // shard, which decodes CONNECT again. A CONNECT that arrives whole is
    // decoded straight from the receive buffer and never lands here.
    std::string pending_connect;
    // The peer's text when it is not an IP address (peer_family 0) and not
    // an unnamed unix socket.
    std::string peer_text;
    // The will from CONNECT; most clients have none.
    std::unique_ptr<WillMessage> will;
    // MQTT 5 enhanced authentication: the method and any exchange in
    // progress; nullptr when CONNECT named no Authentication Method.
    std::unique_ptr<AuthState> auth;
    std::unique_ptr<HeldConnect> held;
    std::unique_ptr<TopicAliases> aliases;
  };
  std::unique_ptr<Extras> extras;
  Extras& Extra() {
    if (extras == nullptr) extras = std::make_unique<Extras>();
    return *extras;
  }

  WillMessage* will() const { return extras != nullptr ? extras->will.get() : nullptr; }
  AuthState* auth() const { return extras != nullptr ? extras->auth.get() : nullptr; }
  HeldConnect* held() const { return extras != nullptr ? extras->held.get() : nullptr; }
  // Moves the will (or held CONNECT) out; nullptr when there is none.
  std::unique_ptr<WillMessage> TakeWill() {
    return extras != nullptr ? std::move(extras->will) : nullptr;
  }
  std::unique_ptr<HeldConnect> TakeHeld() {
    return extras != nullptr ? std::move(extras->held) : nullptr;
  }
  TopicAliases& Aliases() {
    std::unique_ptr<TopicAliases>& aliases = Extra().aliases;
    if (aliases == nullptr) aliases = std::make_unique<TopicAliases>();
    return *aliases;
  }
};

// The Authentication Method of a connection with enhanced auth (conn.auth()).
std::string_view AuthMethodOf(const Connection& conn);

}  // namespace shardmq::broker
