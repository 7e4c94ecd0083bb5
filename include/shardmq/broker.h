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
// times; NewInlineClient from any thread that is not a shard thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
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
  uint64_t refused_per_address = 0;
  uint64_t refused_connect_rate = 0;
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

  // Binds every listener (SO_REUSEPORT, one socket per shard), starts the
  // shard threads and returns once they accept connections. Fails if
  // io_uring is unusable here; the message says why and how to fix it.
  absl::Status Start();

  // Begins a graceful stop and returns at once: listeners close, MQTT 5
  // clients get DISCONNECT (0x8B server shutting down), queued output is
  // flushed for a bounded time, then connections close. Safe from any thread.
  void Close();

  // Blocks until every shard thread has stopped.
  ShutdownReport Wait();

  // Start() then Wait(): serves until Close() is called.
  absl::Status Serve();

  // The addresses actually bound ("127.0.0.1:40321"), useful with port 0.
  std::vector<std::string> BoundAddresses() const;

  // The number of shards in use.
  int shard_count() const;

  // Counters over all shards (see BrokerStats); any thread, after Start().
  // All zero before.
  BrokerStats Stats() const;

 private:
  class Impl;
  explicit Broker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardmq
