// shardmq/broker.h: the MQTT broker as a library.
//
// A Broker owns its shard threads (one io_uring ring each) and its listeners.
// The shardmq daemon is a thin main over this class; an embedding program
// uses it the same way:
//
//   shardmq::Options options;
//   options.shards = 2;
//   options.listeners = {"127.0.0.1:1883"};
//   absl::StatusOr<std::unique_ptr<shardmq::Broker>> broker = shardmq::Broker::Create(options);
//   if (!broker.ok()) { /* print broker.status() */ }
//   (*broker)->Start();        // returns once every listener accepts
//   ...
//   (*broker)->Close();        // from any thread, e.g. a signal handler thread
//   (*broker)->Wait();
//
// Thread safety: Create, AddHook, Start and Wait are called from one
// controlling thread; Close may be called from any thread, any number of
// times; NewInlineClient, SetLimits and SetConnectionLimits from any thread
// that is not a shard thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "shardmq/broker_view.h"
#include "shardmq/hooks.h"
#include "shardmq/inline_client.h"
#include "shardmq/options.h"

namespace shardmq {

// Counts reported when the broker stops, for the operator's log.
struct ShutdownReport {
  uint64_t connections_closed = 0;
  uint64_t disconnects_sent = 0;  // MQTT 5 DISCONNECT 0x8B "server shutting down"
};

// Counters summed over every shard since Start(): what the broker accepted,
// refused, closed and slowed down. Each field is read on its own (relaxed),
// so a snapshot taken under traffic is consistent only per field.
struct BrokerStats {
  uint64_t connections_open = 0;  // sockets open now, before or after CONNECT
  uint64_t connections_accepted = 0;
  // Sockets closed at once on accept: Options::max_connections, and the
  // per-source-address limits (max_connections_per_address,
  // max_connect_rate_per_address).
  uint64_t refused_max_connections = 0;
  // Sockets closed at once on accept because their listener had its own
  // max_connections open ("tcp://0.0.0.0:1883?max_connections=5000").
  uint64_t refused_listener_max_connections = 0;
  uint64_t refused_per_address = 0;
  uint64_t refused_connect_rate = 0;
  // Sockets on a proxy_protocol listener closed before CONNECT for a
  // missing, malformed or late PROXY header.
  uint64_t refused_proxy_header = 0;
  uint64_t connects = 0;              // CONNECTs accepted (CONNACK 0)
  uint64_t auth_failures = 0;         // CONNECTs an authentication hook refused
  uint64_t connect_timeouts = 0;      // no complete CONNECT in time
  uint64_t keepalive_timeouts = 0;    // silent past 1.5 x Keep Alive
  uint64_t protocol_errors = 0;       // malformed or forbidden packets
  uint64_t publishers_throttled = 0;  // times a client went over its publish rate
  // Clients disconnected (MQTT 5: 0x96) for staying over their publish rate
  // for 10 s on end, or flooding faster than throttling can hold.
  uint64_t publishers_disconnected = 0;
  uint64_t subscriptions_refused_quota = 0;  // over max_subscriptions_per_client
  uint64_t messages_received = 0;            // PUBLISH from clients
  uint64_t messages_sent = 0;                // PUBLISH to clients
  uint64_t dropped_queue_full = 0;           // a subscriber's queue was full
  uint64_t dropped_qos0_slow = 0;            // QoS 0 to a subscriber not reading
  uint64_t dropped_no_subscribers = 0;       // published where nobody subscribes
  uint64_t dropped_expired = 0;              // past their Message Expiry Interval
  uint64_t dropped_too_large = 0;            // over a subscriber's Maximum Packet Size

  // Messages and their topic + payload bytes by QoS: received (as
  // published) and sent (as delivered, one per subscriber).
  uint64_t messages_received_qos[3] = {};
  uint64_t messages_sent_qos[3] = {};
  uint64_t publish_bytes_received_qos[3] = {};
  uint64_t publish_bytes_sent_qos[3] = {};
  // Bytes on the wire (MQTT packets, TLS records included).
  uint64_t bytes_received = 0;
  uint64_t bytes_sent = 0;

  uint64_t connections_closed = 0;
  uint64_t handoffs = 0;   // connections moved to their client id's home shard
  uint64_t takeovers = 0;  // a new connection took a session from an old one
  uint64_t wills_published = 0;
  uint64_t sessions_expired = 0;
  // Durable state: records appended to the shards' logs, and snapshots
  // written (compaction).
  uint64_t store_records = 0;
  uint64_t store_snapshots = 0;
  // Options::Durability::max_memory: queued copies kept only in the log,
  // read back from it, and lost because reading them back failed.
  uint64_t store_spilled = 0;
  uint64_t store_spill_reads = 0;
  uint64_t store_spill_failures = 0;
  uint64_t tls_failures = 0;

  // Shard runtime: mailbox items posted between shards, posts that found a
  // mailbox full, items drained, wake-ups of sleeping shards (and those
  // skipped because the target was awake), loop turns, sleeps.
  uint64_t mail_pushed = 0;
  uint64_t mail_full = 0;
  uint64_t mail_received = 0;
  uint64_t wakeups_sent = 0;
  uint64_t wakeups_skipped = 0;
  uint64_t loop_turns = 0;
  uint64_t sleeps = 0;
  // Loop utilisation: time the shard thread(s) spent working and blocked
  // waiting for work since they started. busy / (busy + sleep) is the load.
  uint64_t busy_ns = 0;
  uint64_t sleep_ns = 0;
};

// Options::cluster: the node's link to RabbitMQ (README "Cluster").
struct ClusterStats {
  bool enabled = false;    // --cluster-amqp is set
  bool connected = false;  // to RabbitMQ, now
  uint64_t published = 0;  // messages to other nodes, confirmed by RabbitMQ
  uint64_t consumed = 0;   // messages from other nodes handed to the shards
  // Messages from shared subscriptions' queues (any node's, this one's too)
  // handed to the shards, and the shared queues the node consumes.
  uint64_t shared_consumed = 0;
  uint64_t shared_queues = 0;
  // This node's own messages that came back through its queue (it has a
  // subscriber for them too) and were dropped.
  uint64_t own_skipped = 0;
  // Messages for other nodes dropped because the outgoing buffer was full.
  uint64_t dropped_qos0 = 0;
  uint64_t dropped_qos12 = 0;
  uint64_t reconnects = 0;
  uint64_t bindings = 0;  // binding keys the node's queue holds for its filters
  uint64_t buffered = 0;  // messages waiting to be published
  // Publishers whose reading paused because that buffer was over half full.
  uint64_t publisher_pauses = 0;

  // Options::Cluster::redis_url (all zero without it).
  bool redis_enabled = false;
  bool redis_connected = false;
  uint64_t redis_claims = 0;              // client ids claimed at CONNECT
  uint64_t redis_takeovers_sent = 0;      // sessions asked of other nodes
  uint64_t redis_takeovers_received = 0;  // sessions let go to other nodes
  uint64_t redis_takeover_timeouts = 0;   // the old owner never answered
  uint64_t redis_adopted = 0;             // sessions taken from dead nodes
  uint64_t redis_dropped = 0;             // queued messages dropped while Redis was away
  uint64_t redis_reconnects = 0;
  uint64_t redis_buffered = 0;  // commands waiting for Redis
};

// How many connections the broker accepts (the Options fields of the same
// names), for Broker::SetConnectionLimits.
struct ConnectionLimits {
  uint32_t max_connections = 1'000'000;
  uint32_t max_connections_per_address = 0;   // 0: no limit
  uint32_t max_connect_rate_per_address = 0;  // per second; 0: no limit
};

class Broker {
 public:
  // Validates the options and prepares the shards; binds nothing yet.
  // Errors name the option and the value (for example a bad listener address).
  static absl::StatusOr<std::unique_ptr<Broker>> Create(const Options& options);

  // Stops the broker if it is still running and waits for it.
  ~Broker();

  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // Registers hooks after those in Options::hooks (shardmq/hooks.h). Before
  // Start() only: FailedPrecondition afterwards.
  absl::Status AddHook(std::shared_ptr<Hooks> hooks);

  // A client inside this process (shardmq/inline_client.h), with a session
  // on `client_id`'s home shard. After Start(); AlreadyExists if a network
  // client has a session with that id, Unavailable once closing.
  absl::StatusOr<std::unique_ptr<InlineClient>> NewInlineClient(std::string client_id);

  // Replaces Options::limits while the broker runs (or before Start()), for
  // example when the operator's configuration changed. Refuses what Create
  // would refuse (InvalidArgument, naming the field; nothing changes). Once
  // started, it returns after every shard took the new limits, so a client
  // packet that arrives afterwards meets them (DeadlineExceeded if a shard
  // took longer than 5 s: they still apply, late; Unavailable while
  // stopping; FailedPrecondition, changing nothing, from a shard thread such
  // as a hook's). Nothing is closed or refused retroactively.
  //
  // At once, for connected clients too: max_inflight (for messages sent
  // from then on), max_queued_messages / max_queued_bytes /
  // queue_qos0_offline / max_outbound_bytes (for messages queued from then
  // on), max_subscriptions_per_client and denied_filters (for SUBSCRIBEs
  // from then on: a client already holding more filters keeps them but gets
  // no more, 0x97), max_topic_length / max_topic_levels and
  // validate_utf8_payload (for packets decoded from then on),
  // max_publish_rate / max_publish_bytes_rate (a client's own tighter value
  // from a hook, ConnectRequest::limits, stays its ceiling: hooks tighten,
  // never loosen), connect_timeout_ms (for sockets accepted from then on).
  //
  // For connections made after the change only, because an MQTT 5 client
  // was told the old value in CONNACK and must never be held to one it was
  // not told (MQTT 5 section 3.2.2.3): max_packet_size (Maximum Packet
  // Size), receive_maximum, topic_alias_maximum, max_qos, retain_available,
  // max_keepalive (Server Keep Alive) and max_session_expiry (a connected
  // client's DISCONNECT is capped by the new value). MQTT 3.x connections
  // keep these until they reconnect as well, for one rule for all.
  absl::Status SetLimits(const Limits& limits);
  // The limits last set (Options::limits until SetLimits).
  Limits limits() const;

  // Replaces Options::max_connections and the per-address limits, for
  // sockets accepted from then on; connections already open are never
  // closed for them. Raising max_connections admits more at once; turning
  // a per-address limit on counts only connections accepted from then on.
  // InvalidArgument for max_connections 0.
  absl::Status SetConnectionLimits(const ConnectionLimits& limits);
  ConnectionLimits connection_limits() const;

  // Binds every listener (SO_REUSEPORT, one socket per shard), starts the
  // shard threads and returns once they accept connections. Fails if
  // io_uring is unusable here; the message says why and how to fix it.
  // With Options::durability on, first recovers the durable state from
  // data_dir (blocking; the retained messages are served from the start) and
  // fails if a log is damaged in the middle, naming the file and offset.
  absl::Status Start();

  // Begins a graceful stop and returns at once: listeners close, MQTT 5
  // clients get DISCONNECT (0x8B server shutting down), queued output is
  // flushed for a bounded time, then connections close. Safe from any thread.
  void Close();

  // Blocks until every shard thread has stopped.
  ShutdownReport Wait();

  // Start() then Wait(): serves until Close() is called.
  absl::Status Serve();

  // The addresses actually bound, one per listener in Options::listeners
  // order: "127.0.0.1:40321" (useful with port 0), "[::1]:1883", or
  // "unix:/run/shardmq/mqtt.sock".
  std::vector<std::string> BoundAddresses() const;

  // The number of shards in use.
  int shard_count() const;

  // Counters over all shards (see BrokerStats); any thread, after Start().
  // All zero before. Lock-free: relaxed reads of each shard's own counters.
  BrokerStats Stats() const;
  // The same per shard, indexed by shard (connections_open is the group's
  // total in Stats() and each shard's own here).
  std::vector<BrokerStats> StatsPerShard() const;
  // The cluster link's counters (all zero, enabled false, without one).
  ClusterStats cluster_stats() const;

  // Inspection (shardmq/broker_view.h). Each asks every shard concerned
  // through its external mailbox, lets it copy what it owns on its own
  // thread, and waits up to `timeout` for all answers: DeadlineExceeded
  // past it, Unavailable when the broker is not running. Any thread that is
  // not a shard thread (FailedPrecondition there: it would wait on itself).
  absl::StatusOr<std::vector<ShardGauges>> Gauges(absl::Duration timeout) const;
  // Every session, or with `client_id` only that one's (NotFound if none).
  absl::StatusOr<std::vector<ClientView>> Clients(absl::Duration timeout,
                                                  std::string_view client_id = {}) const;
  // Retained messages whose topic `filter` matches ("#": all but $-topics).
  absl::StatusOr<std::vector<RetainedView>> Retained(std::string_view filter,
                                                     absl::Duration timeout) const;
  // Closes the client's connection (MQTT 5: DISCONNECT 0x98, administrative
  // action), publishing its will; with `discard_session` its session ends
  // too, online or not. NotFound when there is no such session;
  // FailedPrecondition for an inline client's.
  absl::Status DisconnectClient(std::string_view client_id, bool discard_session,
                                absl::Duration timeout);

 private:
  class Impl;
  explicit Broker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardmq
