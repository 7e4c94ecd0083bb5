#include "admin/prometheus.h"

#include <cstdint>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace shardmq::admin {
namespace {

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  // One metric family: HELP and TYPE once, then its samples.
  void Family(absl::string_view name, absl::string_view type, absl::string_view help) {
    absl::StrAppend(&out_, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
  }
  void Sample(absl::string_view name, absl::string_view labels, uint64_t value) {
    absl::StrAppend(&out_, name, labels.empty() ? "" : "{", labels, labels.empty() ? "" : "}", " ",
                    value, "\n");
  }
  void Sample(absl::string_view name, absl::string_view labels, double value) {
    absl::StrAppend(&out_, name, labels.empty() ? "" : "{", labels, labels.empty() ? "" : "}", " ",
                    absl::StrFormat("%.6f", value), "\n");
  }

 private:
  std::string& out_;
};

std::string ShardLabel(size_t shard) { return absl::StrCat("shard=\"", shard, "\""); }

// A counter with one sample per shard.
void PerShard(Writer& w, const std::vector<BrokerStats>& shards, absl::string_view name,
              absl::string_view help, uint64_t BrokerStats::*field) {
  w.Family(name, "counter", help);
  for (size_t i = 0; i < shards.size(); ++i) w.Sample(name, ShardLabel(i), shards[i].*field);
}

// Label values here are ours (reasons, numbers), never a client's text, so
// they need no escaping.
struct Reason {
  const char* label;
  uint64_t BrokerStats::*field;
};

void PerShardReasons(Writer& w, const std::vector<BrokerStats>& shards, absl::string_view name,
                     absl::string_view help, std::initializer_list<Reason> reasons) {
  w.Family(name, "counter", help);
  for (size_t i = 0; i < shards.size(); ++i) {
    for (const Reason& r : reasons) {
      w.Sample(name, absl::StrCat(ShardLabel(i), ",reason=\"", r.label, "\""), shards[i].*r.field);
    }
  }
}

void PerShardQos(Writer& w, const std::vector<BrokerStats>& shards, absl::string_view name,
                 absl::string_view help, uint64_t (BrokerStats::*field)[3]) {
  w.Family(name, "counter", help);
  for (size_t i = 0; i < shards.size(); ++i) {
    for (int q = 0; q < 3; ++q) {
      w.Sample(name, absl::StrCat(ShardLabel(i), ",qos=\"", q, "\""), (shards[i].*field)[q]);
    }
  }
}

void Gauge(Writer& w, const std::vector<ShardGauges>& gauges, absl::string_view name,
           absl::string_view help, uint64_t ShardGauges::*field) {
  w.Family(name, "gauge", help);
  for (const ShardGauges& g : gauges) w.Sample(name, ShardLabel(g.shard), g.*field);
}

}  // namespace

std::string RenderPrometheus(const MetricsInput& input) {
  std::string out;
  out.reserve(16384);
  Writer w(out);
  const std::vector<BrokerStats>& s = input.shards;

  w.Family("shardmq_info", "gauge", "Broker version (value is always 1).");
  w.Sample("shardmq_info", absl::StrCat("version=\"", input.version, "\""), uint64_t{1});
  w.Family("shardmq_shards", "gauge", "Shards (threads with their own io_uring ring).");
  w.Sample("shardmq_shards", "", static_cast<uint64_t>(s.size()));
  w.Family("shardmq_uptime_seconds", "gauge", "Seconds since the broker started.");
  w.Sample("shardmq_uptime_seconds", "", input.uptime_seconds);

  // Connections.
  w.Family("shardmq_connections_open", "gauge", "Sockets open, before or after CONNECT.");
  for (size_t i = 0; i < s.size(); ++i) {
    w.Sample("shardmq_connections_open", ShardLabel(i), s[i].connections_open);
  }
  PerShard(w, s, "shardmq_connections_accepted_total", "Sockets accepted.",
           &BrokerStats::connections_accepted);
  PerShardReasons(w, s, "shardmq_connections_refused_total",
                  "Connections refused, by reason: at accept (max_connections, "
                  "listener_max_connections, per_address, connect_rate), for their PROXY "
                  "header (proxy_header) or at CONNECT (auth).",
                  {{"max_connections", &BrokerStats::refused_max_connections},
                   {"listener_max_connections", &BrokerStats::refused_listener_max_connections},
                   {"per_address", &BrokerStats::refused_per_address},
                   {"connect_rate", &BrokerStats::refused_connect_rate},
                   {"proxy_header", &BrokerStats::refused_proxy_header},
                   {"auth", &BrokerStats::auth_failures}});
  PerShard(w, s, "shardmq_connects_total", "CONNECTs accepted (CONNACK 0).",
           &BrokerStats::connects);
  PerShard(w, s, "shardmq_connections_closed_total", "Sockets closed.",
           &BrokerStats::connections_closed);
  PerShardReasons(w, s, "shardmq_disconnects_total", "Connections the broker closed, by reason.",
                  {{"protocol_error", &BrokerStats::protocol_errors},
                   {"keepalive_timeout", &BrokerStats::keepalive_timeouts},
                   {"connect_timeout", &BrokerStats::connect_timeouts},
                   {"publish_rate", &BrokerStats::publishers_disconnected},
                   {"tls_failure", &BrokerStats::tls_failures}});
  PerShard(w, s, "shardmq_handoffs_total",
           "Connections moved to their client id's home shard after CONNECT.",
           &BrokerStats::handoffs);
  PerShard(w, s, "shardmq_takeovers_total", "Sessions taken over by a new connection.",
           &BrokerStats::takeovers);

  // Messages.
  PerShardQos(w, s, "shardmq_messages_received_total", "PUBLISH received, by QoS as published.",
              &BrokerStats::messages_received_qos);
  PerShardQos(w, s, "shardmq_messages_sent_total",
              "PUBLISH delivered to subscribers, by QoS as delivered.",
              &BrokerStats::messages_sent_qos);
  PerShardQos(w, s, "shardmq_publish_bytes_received_total",
              "Topic + payload bytes of PUBLISH received, by QoS.",
              &BrokerStats::publish_bytes_received_qos);
  PerShardQos(w, s, "shardmq_publish_bytes_sent_total",
              "Topic + payload bytes of PUBLISH delivered, by QoS.",
              &BrokerStats::publish_bytes_sent_qos);
  PerShard(w, s, "shardmq_bytes_received_total", "Bytes read from sockets.",
           &BrokerStats::bytes_received);
  PerShard(w, s, "shardmq_bytes_sent_total", "Bytes written to sockets.", &BrokerStats::bytes_sent);
  PerShardReasons(w, s, "shardmq_messages_dropped_total", "Messages dropped, by reason.",
                  {{"queue_full", &BrokerStats::dropped_queue_full},
                   {"qos0_slow", &BrokerStats::dropped_qos0_slow},
                   {"no_subscribers", &BrokerStats::dropped_no_subscribers},
                   {"expired", &BrokerStats::dropped_expired},
                   {"too_large", &BrokerStats::dropped_too_large}});
  PerShard(w, s, "shardmq_publishers_throttled_total",
           "Times a client went over its publish rate and was slowed down.",
           &BrokerStats::publishers_throttled);
  PerShard(w, s, "shardmq_subscriptions_refused_quota_total",
           "Filters refused for max_subscriptions_per_client.",
           &BrokerStats::subscriptions_refused_quota);
  PerShard(w, s, "shardmq_wills_published_total", "Wills published.",
           &BrokerStats::wills_published);
  PerShard(w, s, "shardmq_sessions_expired_total", "Sessions ended by their expiry interval.",
           &BrokerStats::sessions_expired);
  PerShard(w, s, "shardmq_store_records_total", "Records appended to the shard's durable log.",
           &BrokerStats::store_records);
  PerShard(w, s, "shardmq_store_snapshots_total",
           "Snapshots of the shard's live state written to its log (compaction).",
           &BrokerStats::store_snapshots);
  PerShard(w, s, "shardmq_store_spilled_total",
           "Queued copies kept only in the log, over --max-memory.", &BrokerStats::store_spilled);
  PerShard(w, s, "shardmq_store_spill_reads_total",
           "Queued copies read back from the log for their returning client.",
           &BrokerStats::store_spill_reads);
  PerShard(w, s, "shardmq_store_spill_failures_total",
           "Queued copies lost because reading them back from the log failed.",
           &BrokerStats::store_spill_failures);

  // Shard runtime.
  PerShard(w, s, "shardmq_mailbox_pushed_total", "Items this shard posted to other shards.",
           &BrokerStats::mail_pushed);
  PerShard(w, s, "shardmq_mailbox_full_total", "Posts that found the target mailbox full.",
           &BrokerStats::mail_full);
  PerShard(w, s, "shardmq_mailbox_received_total", "Items this shard drained from mailboxes.",
           &BrokerStats::mail_received);
  PerShard(w, s, "shardmq_wakeups_sent_total", "Wake-ups sent to sleeping shards.",
           &BrokerStats::wakeups_sent);
  PerShard(w, s, "shardmq_wakeups_skipped_total", "Wake-ups not needed: the target was awake.",
           &BrokerStats::wakeups_skipped);
  PerShard(w, s, "shardmq_loop_turns_total", "Event loop turns.", &BrokerStats::loop_turns);
  PerShard(w, s, "shardmq_sleeps_total", "Times the shard blocked waiting for work.",
           &BrokerStats::sleeps);
  w.Family("shardmq_shard_busy_seconds_total", "counter",
           "Time the shard thread spent working (loop utilisation = rate(busy) / "
           "(rate(busy) + rate(sleep))).");
  for (size_t i = 0; i < s.size(); ++i) {
    w.Sample("shardmq_shard_busy_seconds_total", ShardLabel(i), s[i].busy_ns / 1e9);
  }
  w.Family("shardmq_shard_sleep_seconds_total", "counter",
           "Time the shard thread spent blocked waiting for work.");
  for (size_t i = 0; i < s.size(); ++i) {
    w.Sample("shardmq_shard_sleep_seconds_total", ShardLabel(i), s[i].sleep_ns / 1e9);
  }

  // Gauges, from the shards' answers.
  w.Family("shardmq_gauges_up", "gauge",
           "1 if every shard answered for the gauges below, 0 if they timed out.");
  w.Sample("shardmq_gauges_up", "", uint64_t{input.gauges.empty() ? 0u : 1u});
  if (!input.gauges.empty()) {
    const auto& g = input.gauges;
    Gauge(w, g, "shardmq_clients_connected", "Clients connected (sessions with a connection).",
          &ShardGauges::clients_connected);
    Gauge(w, g, "shardmq_sessions", "Sessions, online or not.", &ShardGauges::sessions);
    Gauge(w, g, "shardmq_subscriptions", "Subscriptions (filters held by sessions).",
          &ShardGauges::subscriptions);
    Gauge(w, g, "shardmq_inflight_messages", "QoS 1/2 messages sent and not acknowledged.",
          &ShardGauges::inflight);
    Gauge(w, g, "shardmq_queued_messages",
          "Messages waiting for an in-flight slot or an offline client.", &ShardGauges::queued);
    Gauge(w, g, "shardmq_queued_bytes", "Bytes of the queued messages.",
          &ShardGauges::queued_bytes);
    Gauge(w, g, "shardmq_store_log_bytes",
          "Bytes of the shard's durable log on disk (since its last snapshot).",
          &ShardGauges::store_log_bytes);
    Gauge(w, g, "shardmq_store_pending_bytes", "Log records appended and not yet on disk.",
          &ShardGauges::store_pending_bytes);
    Gauge(w, g, "shardmq_store_stalled",
          "1 while the shard's log is stalled (disk full): what it cannot store is not "
          "acknowledged.",
          &ShardGauges::store_stalled);
    Gauge(w, g, "shardmq_queued_memory_bytes",
          "Memory charged for queued messages (bounded by --max-memory).",
          &ShardGauges::queued_memory_bytes);
    Gauge(w, g, "shardmq_store_spilled_messages",
          "Queued messages kept only in the log until their client returns.",
          &ShardGauges::store_spilled_messages);
    w.Family("shardmq_retained_messages", "gauge", "Retained messages.");
    w.Sample("shardmq_retained_messages", "", g.front().retained);
  }
  if (input.cluster.enabled) {
    // One link per node, so no shard label (README "Cluster").
    const ClusterStats& c = input.cluster;
    auto one = [&w](absl::string_view name, absl::string_view type, absl::string_view help,
                    uint64_t value) {
      w.Family(name, type, help);
      w.Sample(name, "", value);
    };
    one("shardmq_cluster_connected", "gauge", "1 while the node is connected to RabbitMQ.",
        c.connected ? 1 : 0);
    one("shardmq_cluster_published_total", "counter",
        "Messages sent to the other nodes, confirmed by RabbitMQ.", c.published);
    one("shardmq_cluster_consumed_total", "counter",
        "Messages from other nodes handed to the shards.", c.consumed);
    one("shardmq_cluster_shared_consumed_total", "counter",
        "Messages from shared subscriptions' queues handed to the shards.", c.shared_consumed);
    one("shardmq_cluster_shared_queues", "gauge",
        "Shared subscriptions' queues the node consumes (it has members of the group).",
        c.shared_queues);
    one("shardmq_cluster_own_skipped_total", "counter",
        "This node's own messages that came back through its queue and were dropped.",
        c.own_skipped);
    w.Family("shardmq_cluster_dropped_total", "counter",
             "Messages for other nodes dropped because the outgoing buffer was full, by QoS.");
    w.Sample("shardmq_cluster_dropped_total", "qos=\"0\"", c.dropped_qos0);
    w.Sample("shardmq_cluster_dropped_total", "qos=\"1_2\"", c.dropped_qos12);
    one("shardmq_cluster_reconnects_total", "counter", "Connections to RabbitMQ made again.",
        c.reconnects);
    one("shardmq_cluster_bindings", "gauge", "Binding keys the node's queue holds for its filters.",
        c.bindings);
    one("shardmq_cluster_buffered_messages", "gauge",
        "Messages for other nodes waiting to be published.", c.buffered);
    one("shardmq_cluster_publisher_pauses_total", "counter",
        "Publishers paused because the buffer towards RabbitMQ was over half full.",
        c.publisher_pauses);
    if (c.redis_enabled) {
      one("shardmq_cluster_redis_connected", "gauge", "1 while the node is connected to Redis.",
          c.redis_connected ? 1 : 0);
      one("shardmq_cluster_redis_claims_total", "counter",
          "Client ids claimed in Redis at CONNECT.", c.redis_claims);
      one("shardmq_cluster_redis_takeovers_sent_total", "counter",
          "Sessions this node asked another node to let go of.", c.redis_takeovers_sent);
      one("shardmq_cluster_redis_takeovers_received_total", "counter",
          "Sessions this node let go of to another node's CONNECT.", c.redis_takeovers_received);
      one("shardmq_cluster_redis_takeover_timeouts_total", "counter",
          "Takeovers whose old owner never answered (went on after one lease).",
          c.redis_takeover_timeouts);
      one("shardmq_cluster_redis_adopted_total", "counter",
          "Sessions adopted from nodes whose lease ran out.", c.redis_adopted);
      one("shardmq_cluster_redis_dropped_total", "counter",
          "Messages for parked sessions dropped because the buffer for Redis was full.",
          c.redis_dropped);
      one("shardmq_cluster_redis_reconnects_total", "counter", "Connections to Redis made again.",
          c.redis_reconnects);
      one("shardmq_cluster_redis_buffered_commands", "gauge", "Commands waiting for Redis.",
          c.redis_buffered);
    }
  }
  return out;
}

}  // namespace shardmq::admin
