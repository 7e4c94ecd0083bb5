// What one shardmq-bench run does: the scenario and every knob, as plain
// values filled from the command line (bench_main.cc) and checked by
// Validate before any socket is opened.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "mqtt/protocol_version.h"

namespace shardmq::bench {

// Scenario names follow emqtt-bench's vocabulary.
enum class Scenario : uint8_t {
  kFanout,    // P publishers -> S subscribers on the same topic(s).
  kFanin,     // P publishers on P topics -> S subscribers on one wildcard.
  kP2p,       // N publisher/subscriber pairs, one topic per pair.
  kConn,      // Connection storm: CONNECT/CONNACK rate and memory per connection.
  kRetained,  // R retained messages, then one subscriber: time to receive all.
};

bool ParseScenario(std::string_view text, Scenario* out);
const char* ScenarioName(Scenario s);

struct Config {
  Scenario scenario = Scenario::kFanout;
  std::string host = "127.0.0.1";
  int port = 1883;
  // Subscribers connect here instead (another node of a cluster); empty / 0:
  // host / port.
  std::string sub_host;
  int sub_port = 0;
  // Pause after the last SUBACK before publishing (a cluster binds its
  // subscriptions on RabbitMQ shortly after SUBACK).
  int64_t settle_ns = 0;
  int mqtt_version = 4;  // 3 = 3.1, 4 = 3.1.1, 5 = 5.0.
  int qos = 0;
  int payload = 64;     // Bytes, at least kStampSize.
  int publishers = 1;   // fanout/fanin; p2p uses pairs.
  int subscribers = 1;  // fanout/fanin.
  int pairs = 1;        // p2p.
  int topics = 1;       // fanout: topics the publishers/subscribers spread over.
  bool shared = false;  // fanin: subscribers join one $share group.
  double rate = 0;      // Per publisher msgs/s; 0 = as fast as the window allows.
  int inflight = 0;     // Window per publisher; 0 = default for the QoS.
  int64_t duration_ns = 10'000'000'000;
  int64_t warmup_ns = 1'000'000'000;
  int64_t drain_ns = 5'000'000'000;  // Wait for stragglers after publishing stops.
  int64_t connect_timeout_ns = 10'000'000'000;
  int threads = 1;
  int connections = 1000;     // conn.
  double conn_rate = 0;       // conn: new connections/s; 0 = as fast as possible.
  int conn_parallel = 256;    // conn: handshakes in flight at once.
  int retained = 1000;        // retained.
  std::string client_prefix;  // Default: "smqb<pid>-".
  // Steer clients to a home shard of a shardmq run with `home_shards` shards
  // (its hash(client id) mod N): ids get a suffix until they hash there.
  // -1 = leave the id as it is.
  int home_shards = 0;
  int pub_shard = -1;
  int sub_shard = -1;
  std::string topic_prefix;  // Default: "bench/<pid>".
  int broker_pid = 0;
  int keepalive = 0;
  // Subscribers' sessions: 0 = clean (Clean Session 1 / Clean Start 1);
  // N > 0 = persistent: 3.x connects with Clean Session 0 (its session never
  // expires), MQTT 5 with Clean Start 0 and Session Expiry Interval N seconds.
  // A broker logs queued messages only for persistent sessions (shardmq's
  // --durability), so this is what makes a run exercise its store.
  uint32_t session_expiry = 0;
  bool json = false;
  bool progress = true;
  bool allow_loss = false;  // Loss never fails the run (dup/reorder still do).
  bool strict = false;      // QoS 0 loss/dup fails the run too.

  mqtt::ProtocolVersion version() const { return static_cast<mqtt::ProtocolVersion>(mqtt_version); }
  // The per-publisher window the run uses.
  int Window() const { return inflight > 0 ? inflight : (qos == 0 ? 1000 : 100); }
};

// `base` with the shortest suffix "-h<n>" whose home is `shard`; `base` itself
// when `shard` < 0.
std::string IdOnShard(std::string base, int shard, int shard_count);

// Checks ranges and combinations; the message names the flag and value.
absl::Status Validate(const Config& config);

}  // namespace shardmq::bench
