// shardmq/broker_view.h: what Broker's inspection calls return (gauges,
// clients, retained messages), for an operator's tools: metrics, $SYS
// topics, the admin HTTP API (shardmq/admin.h).
//
// Each is a copy made by the shard that owns the data, on its own thread,
// when asked (Broker::Gauges, Broker::Clients, Broker::Retained): nothing is
// kept up to date on the data path for them, and the caller's thread waits
// for the shards' answers, never the reverse.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace shardmq {

// Levels (not totals) of one shard at the moment it answered.
struct ShardGauges {
  int shard = 0;
  uint64_t connections_open = 0;  // sockets on this shard, before or after CONNECT
  // Network clients' sessions with a live connection, and all of them
  // (online or not) homed here. Inline clients are not counted.
  uint64_t clients_connected = 0;
  uint64_t sessions = 0;
  uint64_t subscriptions = 0;  // filters held by those sessions
  uint64_t inflight = 0;       // QoS 1/2 messages sent and not acknowledged
  uint64_t queued = 0;         // messages waiting for a slot or an offline client
  uint64_t queued_bytes = 0;
  // Retained messages: every shard holds the whole set, so this is the
  // broker's count (do not sum it over shards).
  uint64_t retained = 0;
  // Durable state (Options::durability), 0 without it: bytes of this
  // shard's log on disk (segments since the last snapshot), records
  // appended and not yet on disk, and 1 while the log is stalled on a full
  // disk (then it holds what it cannot store and retries every second).
  uint64_t store_log_bytes = 0;
  uint64_t store_pending_bytes = 0;
  uint64_t store_stalled = 0;
  // Memory charged for queued messages (Options::Durability::max_memory
  // bounds it), and queued copies kept only in the log beyond it.
  uint64_t queued_memory_bytes = 0;
  uint64_t store_spilled_messages = 0;
};

// One session, online or not.
struct ClientView {
  std::string client_id;
  int shard = 0;  // its home shard
  bool connected = false;
  bool inline_client = false;
  bool persistent = false;   // kept when the connection ends
  std::string address;       // "ip:port" (or "unix") while connected, else empty
  int protocol_version = 0;  // 3, 4 or 5 while connected, else 0
  std::string username;      // known only when hooks are registered
  uint16_t keep_alive = 0;   // seconds, while connected
  std::vector<std::pair<std::string, uint8_t>> subscriptions;  // filter, granted QoS
  uint64_t inflight = 0;
  uint64_t queued = 0;
  uint64_t queued_bytes = 0;
};

// One retained message.
struct RetainedView {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
};

}  // namespace shardmq
