// What every BrokerShard shares: read-only configuration and per-shard
// statistics that other threads may read.
//
// Lifecycle: owned by Broker::Impl, created before the shards start and
// destroyed after they stop. Nothing but the stats is written after start
// (limits are what each shard starts with; Broker::SetLimits hands new ones
// to every shard's own copy, BrokerShard::ApplyLimits); each ShardStats is
// written only by its own shard (relaxed atomics) and read by anyone.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "broker/hooks_dispatch.h"
#include "broker/message.h"
#include "broker/session_recovery.h"
#include "broker/shard_file_io.h"
#include "shardmq/options.h"
#include "store/log_writer.h"

namespace shardmq::cluster {
class AmqpLink;   // cluster/amqp_link.h
class RedisLink;  // cluster/redis_link.h
}  // namespace shardmq::cluster

namespace shardmq::broker {

class BrokerLink;  // broker/broker_link.h

struct ShardStats {
  // Written by one shard with relaxed load+store (no locked instruction).
  static void Inc(std::atomic<uint64_t>& counter, uint64_t n = 1) {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::atomic<uint64_t> connects{0};
  std::atomic<uint64_t> handoffs{0};
  std::atomic<uint64_t> takeovers{0};
  // --cluster-redis: sessions let go to another node's CONNECT, and dead
  // nodes' sessions adopted here.
  std::atomic<uint64_t> cluster_takeovers{0};
  std::atomic<uint64_t> cluster_adopted{0};
  // Publishers paused while the buffer towards RabbitMQ was over half full.
  std::atomic<uint64_t> cluster_pauses{0};
  std::atomic<uint64_t> protocol_errors{0};
  std::atomic<uint64_t> keepalive_timeouts{0};
  std::atomic<uint64_t> messages_received{0};
  std::atomic<uint64_t> messages_sent{0};
  // The same split by QoS (as received; as delivered), with their topic +
  // payload bytes, for metrics. Indexed by QoS 0..2.
  std::atomic<uint64_t> received_by_qos[3] = {};
  std::atomic<uint64_t> received_bytes_by_qos[3] = {};
  std::atomic<uint64_t> sent_by_qos[3] = {};
  std::atomic<uint64_t> sent_bytes_by_qos[3] = {};
  void CountReceived(uint8_t qos, uint64_t bytes) {
    Inc(messages_received);
    Inc(received_by_qos[qos > 2 ? 2 : qos]);
    Inc(received_bytes_by_qos[qos > 2 ? 2 : qos], bytes);
  }
  void CountSent(uint8_t qos, uint64_t bytes) {
    Inc(messages_sent);
    Inc(sent_by_qos[qos > 2 ? 2 : qos]);
    Inc(sent_bytes_by_qos[qos > 2 ? 2 : qos], bytes);
  }
  std::atomic<uint64_t> dropped_no_subscribers{0};
  std::atomic<uint64_t> dropped_qos0_slow{0};
  std::atomic<uint64_t> dropped_queue_full{0};
  // Messages past their Message Expiry Interval before they could be sent.
  std::atomic<uint64_t> dropped_expired{0};
  // Messages larger than a subscriber's Maximum Packet Size (MQTT 5).
  std::atomic<uint64_t> dropped_too_large{0};
  std::atomic<uint64_t> publisher_pauses{0};
  // Times a client went over its publish rate and had its reading paused.
  std::atomic<uint64_t> publishers_throttled{0};
  // Clients disconnected for staying over their publish rate (0x96).
  std::atomic<uint64_t> publishers_disconnected{0};
  // SUBSCRIBE filters refused for max_subscriptions_per_client.
  std::atomic<uint64_t> subscriptions_refused_quota{0};
  // Sockets closed for not completing CONNECT within connect_timeout_ms.
  std::atomic<uint64_t> connect_timeouts{0};
  std::atomic<uint64_t> wills_published{0};
  std::atomic<uint64_t> shutdown_disconnects{0};
  std::atomic<uint64_t> sessions_expired{0};
  // Durable state: records appended to this shard's log, snapshots written.
  std::atomic<uint64_t> store_records{0};
  std::atomic<uint64_t> store_snapshots{0};
  // --max-memory: copies kept only in the log, read back from it, and lost
  // because the read failed (a damaged or missing segment).
  std::atomic<uint64_t> store_spilled{0};
  std::atomic<uint64_t> store_spill_reads{0};
  std::atomic<uint64_t> store_spill_failures{0};
  std::atomic<uint64_t> redirects{0};
  std::atomic<uint64_t> auth_failures{0};
};

struct BrokerContext {
  shardmq::Limits limits;
  shardmq::ServerRedirect redirect;
  std::string response_information;
  // Options::Tls::identity_as_username: a TLS client's certificate identity
  // is its user name, and a TLS client without one is refused.
  bool tls_identity_as_username = false;
  // Shared by every shard; see shardmq/auth.h for its threading contract.
  std::shared_ptr<shardmq::EnhancedAuthenticator> authenticator;
  // The embedder's hooks (shardmq/hooks.h), fixed before the shards start.
  HookDispatch hooks;
  // How deferred authentications come back to their shard (any thread).
  std::shared_ptr<BrokerLink> link;
  int shard_count = 1;
  std::vector<std::unique_ptr<ShardStats>> stats;  // one per shard
  // Options::cluster: the link to RabbitMQ, or nullptr when clustering is
  // off (every use is behind that null check). Owned by Broker::Impl; it
  // outlives the shards. Its Publish/Filter* calls never block a shard.
  cluster::AmqpLink* cluster = nullptr;
  // Options::Cluster::redis_url: the link to Redis, or nullptr.
  cluster::RedisLink* redis = nullptr;
  // Server-assigned client ids start with it ("smq-", and the node id in a
  // cluster, so that they are unique across the nodes).
  std::string client_id_prefix = "smq-";

  // Durable state (Options::durability): one slot per shard, filled by
  // Broker::Start before the shard threads run and emptied by each
  // BrokerShard's constructor, which takes its log writer. Empty when
  // durability is off.
  struct ShardStore {
    std::unique_ptr<ShardFileIo> io;
    std::unique_ptr<store::LogWriter> writer;
  };
  std::vector<ShardStore> store;
  bool durability_sync = false;
  int64_t durability_flush_ns = 0;
  // Options::Durability::compaction_bytes.
  uint64_t compaction_bytes = 64 << 20;
  // Options::Durability::max_memory divided among the shards (0: none).
  uint64_t spill_budget = 0;
  // Retained messages recovered at start-up, loaded by every shard's
  // constructor (shared, immutable), dropped once the shards have started.
  std::vector<MessageRef> recovered_retained;
  // New retained stamps start above every recovered one.
  int64_t retained_stamp_floor = 0;
  // Persistent sessions recovered at start-up, by home shard: each shard's
  // constructor takes its own (BrokerShard::RestoreSessions).
  std::vector<std::vector<RecoveredSession>> recovered_sessions;
  // Their filters with their home shard, and shared groups' members per
  // shard: read (never written) by every shard's constructor, so each
  // knows the others' subscribers before it serves.
  std::vector<std::pair<std::string, int>> recovered_interest;
  std::vector<std::pair<std::string, std::vector<uint32_t>>> recovered_shared_members;
  // MESSAGE and QUEUED numbers start here (session_records.h).
  uint64_t next_log_number = 1;
};

}  // namespace shardmq::broker
