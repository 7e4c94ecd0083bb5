// shardmq/options.h: what an embedding program (or the shardmq daemon) can
// set before the broker starts.
//
// Example:
//   shardmq::Options options;
//   options.shards = 4;
//   options.listeners = {"127.0.0.1:1883", "[::1]:1883"};
//   auto broker = shardmq::Broker::Create(options);
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "shardmq/auth.h"
#include "shardmq/hooks.h"

namespace shardmq {

// The bounds the broker enforces per client and per packet (DESIGN.md,
// "Bounded everything"). When one is hit the broker refuses, drops with a
// counter, or closes that one connection; it never grows without bound.
// Broker::SetLimits replaces them while the broker runs (shardmq/broker.h
// says which apply to connected clients and which to new connections only).
struct Limits {
  // Largest packet accepted from a client (remaining length + fixed header);
  // larger ones close the connection (MQTT 5: DISCONNECT 0x95).
  uint32_t max_packet_size = 1 << 20;
  // QoS 1/2 messages sent to a client and not yet acknowledged (an MQTT 5
  // client's Receive Maximum lowers it). The window bounds a subscriber's
  // QoS 1/2 throughput at one window per round trip: at 32 the broker sent
  // small batches, costing 0.42 us of CPU per QoS 1 message (p2p, one
  // shard); at 128, 0.26 us, with a tenth of the p99 latency.
  uint16_t max_inflight = 128;
  // Messages waiting for an in-flight slot or for an offline client to return;
  // beyond either bound new messages for that client are dropped and counted.
  // A connected client's QoS 1/2 messages past half the bound pause their
  // publishers instead (until its queue is under a quarter); they are dropped
  // only past 8 times the bound plus what the publishers had already sent
  // when their pause reached them (up to 65,536 more messages).
  uint32_t max_queued_messages = 1000;
  size_t max_queued_bytes = 16 << 20;
  // Keep QoS 0 messages for offline persistent sessions too (3.1.1 allows it).
  bool queue_qos0_offline = false;
  // Bytes waiting in a connection's socket queue beyond which QoS 0 messages
  // to it are dropped: a slow subscriber must not make the broker grow.
  size_t max_outbound_bytes = 4 << 20;
  // Filters one client may hold.
  uint32_t max_subscriptions_per_client = 10000;
  // Topic names and filters: bytes and levels.
  uint32_t max_topic_length = 65535;
  uint32_t max_topic_levels = 128;
  // MQTT 5 Topic Alias Maximum offered to clients: how many aliases each
  // connection may define for the topics it publishes to (0: none). Each costs
  // one stored topic per connection while in use.
  uint16_t topic_alias_maximum = 64;
  // Check the payload of a PUBLISH whose Payload Format Indicator says UTF-8,
  // and refuse it (PUBACK/PUBREC 0x99, or DISCONNECT 0x99 for QoS 0) when it
  // is not valid UTF-8 (section 3.3.2.3.2). Off by default: it reads every byte.
  bool validate_utf8_payload = false;
  // A socket that has not completed CONNECT by then is closed.
  uint32_t connect_timeout_ms = 10000;
  // PUBLISH packets per second, and topic + payload bytes per second, one
  // client may send (0: no limit); a second's worth may come at once. A
  // client over either is throttled: the broker stops reading from its
  // socket until it is back within the rate, so it slows down through TCP
  // and nobody else notices (counted, and logged once a second at most).
  // One that stays over for 10 s on end (or floods faster than the pause
  // can hold: more than a packet and 256 KiB read past it) is disconnected,
  // MQTT 5 with DISCONNECT 0x96 (message rate too high).
  // Authentication hooks may set a client's own, tighter values
  // (ConnectRequest::limits), e.g. from an ACL file's `limit publish_rate`.
  uint32_t max_publish_rate = 0;
  uint64_t max_publish_bytes_rate = 0;
  // Topic filters no client may subscribe to (compared as written): SUBACK
  // answers them with 0x80 (unspecified error) in every version. For
  // operators and for the Paho interoperability suite's "test/nosubscribe".
  std::vector<std::string> denied_filters;

  // Longest Session Expiry Interval (seconds) an MQTT 5 client is granted; a
  // client asking more gets this, and CONNACK says so. 0xFFFFFFFF: no cap
  // ("never expires" is granted as asked). MQTT 3.x persistent sessions never
  // expire, as they always have.
  uint32_t max_session_expiry = 0xFFFFFFFF;
  // Longest Keep Alive (seconds) an MQTT 5 client may use; one asking more,
  // or 0 (no keep-alive), is told Server Keep Alive = this in CONNACK and held
  // to it. 65535 (the protocol's maximum): no cap. MQTT 3.x cannot be told a
  // different value, so its clients keep their own: holding one to a shorter
  // timeout it does not know about would disconnect healthy clients.
  uint16_t max_keepalive = 65535;
  // QoS 2 PUBLISH packets an MQTT 5 client may have unreleased (no PUBREL
  // yet) at once; CONNACK advertises it as Receive Maximum and one more is
  // answered with DISCONNECT 0x93. It bounds the packet ids each session
  // remembers; 1024 leaves a fast publisher plenty of window (the QoS 1
  // flow is acknowledged at once and never counts), and stays below 65535,
  // which some clients cannot fill because they never reuse a packet id
  // still in flight (the Paho test client).
  uint16_t receive_maximum = 1024;
  // Highest QoS accepted in PUBLISH and wills (0, 1 or 2). CONNACK advertises
  // it; a PUBLISH above it closes the connection (MQTT 5: DISCONNECT 0x9B),
  // a will above it refuses CONNECT (0x9B).
  uint8_t max_qos = 2;
  // Retained messages accepted. When false CONNACK says Retain Available 0
  // and a PUBLISH or will with RETAIN closes / refuses (MQTT 5: 0x9A).
  bool retain_available = true;
};

// Send every MQTT 5 client elsewhere (MQTT 5 section 4.11): CONNECT is
// answered with CONNACK 0x9D (server moved) or 0x9C (use another server) and
// the Server Reference; 3.x clients, which cannot be told where, get return
// code 0x03 (server unavailable).
struct ServerRedirect {
  enum class Kind : uint8_t { kNone, kMoved, kUseAnother };
  Kind kind = Kind::kNone;
  // "host" or "host:port" (the Server Reference property, sent as written).
  std::string server_reference;
};

struct Options {
  // Number of shards: threads that each own one io_uring ring, their
  // connections and their part of the sessions. 0 means one per CPU the
  // process may run on. More shards than CPUs works but gains nothing.
  int shards = 0;

  // Addresses to accept MQTT connections on: "host:port" or
  // "tcp://host:port", IPv4 or IPv6 ("[::1]:1883"); "tls://host:port"; MQTT
  // over WebSocket "ws://host:port/path" or "wss://host:port/path" (the path
  // defaults to "/mqtt"); a unix-domain socket "unix:///run/shardmq/mqtt.sock"
  // (plain MQTT for local clients). Port 0 picks a free port;
  // Broker::BoundAddresses() tells which. Loopback by default, like the
  // daemon: serving the network ("0.0.0.0:1883") is a choice to make along
  // with authentication hooks.
  //
  // Options for one listener follow a '?', joined by '&':
  //   proxy_protocol=true  for a listener behind a load balancer that sends
  //                        the PROXY protocol (see below).
  //   max_connections=N    connections open at once on this listener, over
  //                        all shards; beyond it new ones are closed on
  //                        accept (BrokerStats::refused_listener_max_connections).
  //                        0 (the default): only max_connections below.
  //   mode=0660            unix only: the socket file's permission bits
  //                        (octal); unset, the umask decides. Connecting
  //                        needs write permission on the file.
  //   owner=user[:group]   unix only: the socket file's owner and group, names
  //                        or numbers. Broker::Create() fails for an unknown
  //                        one; giving the file away needs root (CAP_CHOWN).
  // e.g. "unix:///run/shardmq/mqtt.sock?mode=0660&owner=mqtt:mqtt",
  //      "tcp://0.0.0.0:1883?max_connections=5000".
  //
  // A unix socket is bound once and every shard accepts on it (SO_REUSEPORT
  // does not spread unix connections). Start() replaces a socket file that
  // nothing accepts on any more (left by a crashed process), and fails if
  // something still accepts on the path or the path is not a socket; the
  // file is removed when the broker stops. Unix peers have no address, so
  // the per-address limits below do not apply to them.
  //
  // "?proxy_protocol=true" after any of them ("tcp://0.0.0.0:1883?proxy_protocol=true")
  // is for a listener behind a load balancer that sends the PROXY protocol
  // (v1 or v2; HAProxy's send-proxy, AWS NLB...): each connection must start
  // with the header, before TLS or the WebSocket Upgrade, and the client
  // address in it replaces the balancer's everywhere (hooks' ClientInfo and
  // Accept, the admin API, logs, the per-address limits). A connection
  // without a valid header, or without a complete one within
  // limits.connect_timeout_ms, is closed before any hook hears of it
  // (BrokerStats::refused_proxy_header). Enable it only where nothing but a
  // trusted balancer can connect: anyone else could claim any address.
  std::vector<std::string> listeners = {"127.0.0.1:1883"};

  // Certificate, key and CA for "tls://host:port" and "wss://host:port/path"
  // listeners (TLS 1.2 and
  // 1.3, OpenSSL). With ca_file set, a client certificate is asked for and,
  // if presented, verified; require_client_cert refuses clients without one.
  // A verified certificate's subject CN (else first DNS SAN) is the
  // connection's certificate identity.
  struct Tls {
    std::string cert_file;
    std::string key_file;
    std::string ca_file;
    bool require_client_cert = false;
    // The certificate identity replaces CONNECT's User Name on tls://
    // listeners (Mosquitto's use_identity_as_username): hooks see it as
    // ClientInfo::username, with ClientInfo::username_from_certificate set,
    // so an ACL keyed by user name applies to the certificate's owner. A TLS
    // client without a verified certificate is refused (MQTT 5 CONNACK 0x87,
    // 3.1.1 return code 0x05); plain tcp:// listeners are unaffected. Needs
    // ca_file (Broker::Create fails without it).
    bool identity_as_username = false;
  };
  Tls tls;

  // CPU for each shard thread, shard i on cpu_affinity[i % size]. Empty: the
  // threads are not pinned and the kernel schedules them.
  std::vector<int> cpu_affinity;

  // Batched waiting, in microseconds (0: off). An idle shard then sleeps
  // until many completions are pending or this much time has passed, so one
  // wake-up serves many messages: much less CPU per message at low rates,
  // for up to this much added latency while traffic is light. Needs Linux
  // 6.12 (io_uring min_wait); ignored elsewhere. bench/RESULTS.md has the
  // measured trade-off.
  uint32_t batch_wait_us = 0;

  // Connections open at once over all shards; beyond it new connections are
  // closed as soon as they are accepted (and counted). These three may
  // change while running: Broker::SetConnectionLimits.
  uint32_t max_connections = 1'000'000;
  // Per source address (IPv4, or whole IPv6 address): connections open at
  // once, and new connections per second (a second's worth may come at
  // once). Beyond either, new sockets are closed as soon as they are
  // accepted, counted and logged (once a second at most). 0: no limit, the
  // default: many clients may share one address behind NAT.
  uint32_t max_connections_per_address = 0;
  uint32_t max_connect_rate_per_address = 0;

  // Per-client and per-packet bounds.
  Limits limits;

  // Durable state (DESIGN.md, "Durable state"): where and how safely the
  // broker keeps what must survive a restart. So far retained messages are
  // stored (issue 9 adds sessions and queued messages).
  struct Durability {
    enum class Mode : uint8_t {
      // Memory only: a restart forgets everything.
      kNone,
      // Every change is written at the end of the loop turn in which its
      // owner shard logs it, and fdatasync'ed at most every
      // flush_interval_ms; acknowledgements are not delayed. A broker crash
      // (kill -9) loses the writes the kernel had not finished (io_uring
      // cancels queued ones with the process): typically the last few
      // milliseconds of changes, which may include acknowledged ones; a
      // power loss or kernel crash loses at most the last
      // flush_interval_ms of changes.
      kAsync,
      // Acknowledgements wait for the records they promise: a QoS 1/2
      // PUBLISH's PUBACK / PUBREC until every persistent subscriber's copy
      // and a retained change are on stable storage, SUBACK / UNSUBACK
      // until a persistent session's subscriptions are, PUBREL / PUBCOMP
      // until the QoS 2 state they end is; and a QoS 2 message goes to a
      // persistent subscriber only once its packet id is stored (so a crash
      // never makes it arrive twice). Many clients' records share one
      // fdatasync (group commit). Nothing acknowledged is lost. CONNACK does
      // not wait: its Session Present flag tells a client that reconnects
      // after a crash whether its session was kept.
      kSync,
    };
    // Directory of the shards' logs (<data_dir>/shard-N/). Empty: memory
    // only, whatever the mode.
    std::string data_dir;
    // With a data_dir; the daemon's default is kAsync.
    Mode mode = Mode::kAsync;
    // kAsync: the longest a written change waits for its fdatasync.
    uint32_t flush_interval_ms = 100;
    // A log damaged in the middle stops Start() (naming file and offset);
    // with salvage the readable records on both sides of the damage are
    // recovered instead, each skipped stretch is logged, and the data
    // directory is rewritten from what was recovered, so the damage is gone
    // from later starts.
    bool salvage = false;
    // A shard writes a snapshot of its live state (and deletes the log
    // before it) once it has logged more than this since the last snapshot
    // and more than twice that snapshot's size: disk use and recovery time
    // follow the live state, not the history.
    uint64_t compaction_bytes = 64 << 20;
    // Memory for queued messages, split evenly among the shards (0: no
    // limit). Once a shard's queued messages take its share, new QoS 1/2
    // messages for offline persistent sessions are kept only in the log and
    // read back when their client returns and its queue reaches them; so
    // are those recovered beyond it at start-up. Messages for connected
    // clients, QoS 0 and shared-subscription copies stay in memory (their
    // own limits, Limits::max_queued_*, bound them). Needs enabled().
    uint64_t max_memory = 0;

    bool enabled() const { return !data_dir.empty() && mode != Mode::kNone; }
  };
  Durability durability;

  // Answer every CONNECT with a redirect instead of serving it.
  ServerRedirect redirect;

  // Several nodes as one broker through RabbitMQ (README "Cluster"):
  // messages published here reach matching subscribers on the other nodes,
  // retained messages are stored on every node. Off while amqp_url is empty,
  // and then costs nothing.
  struct Cluster {
    // amqp://user:pass@host:port/vhost
    std::string amqp_url;
    // This node's name among the nodes (its queue is "shardmq.node.<id>").
    std::string node_id;
    // The topic exchange every node publishes to.
    std::string exchange = "shardmq";
    // Messages for other nodes held while RabbitMQ is slow or away; over
    // it QoS 0 messages are dropped first (counted, logged).
    uint32_t buffer_messages = 100000;
    // redis://[:password@]host:port[/db], or empty. Redis then holds what all
    // nodes share: which node owns each client id (a CONNECT on another node
    // takes the session over), persistent sessions with their queued
    // messages, and retained messages. Needs amqp_url; not with durability.
    std::string redis_url;
    // How long a node that stopped answering keeps its client ids before
    // another node adopts its sessions.
    uint32_t lease_ms = 10000;

    bool enabled() const { return !amqp_url.empty(); }
    bool shared_state() const { return enabled() && !redis_url.empty(); }
  };
  Cluster cluster;

  // MQTT 5 Response Information: a client that sets Request Response
  // Information gets this prefix followed by its client id in CONNACK, a
  // topic subtree it may use for response topics. Empty: not offered.
  std::string response_information;

  // MQTT 5 enhanced authentication (shardmq/auth.h); nullptr: CONNECT with an
  // Authentication Method is refused with 0x8C.
  std::shared_ptr<EnhancedAuthenticator> authenticator;

  // Hooks (shardmq/hooks.h), called in this order; more may be added with
  // Broker::AddHook before Start(). Empty: the broker makes no hook call.
  std::vector<std::shared_ptr<Hooks>> hooks;
};

}  // namespace shardmq
