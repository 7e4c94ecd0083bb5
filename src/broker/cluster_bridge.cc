// See cluster_bridge.h.
#include "broker/cluster_bridge.h"

#include <algorithm>
#include <optional>
#include <string>

#include "absl/hash/hash.h"
#include "base/log.h"
#include "broker/broker_shard.h"
#include "broker/record_codec.h"
#include "broker/retained_recovery.h"
#include "broker/session_records.h"
#include "broker/session_recovery.h"
#include "cluster/amqp_link.h"
#include "cluster/redis_link.h"
#include "mqtt/topic_validation.h"
#include "topic/levels.h"

namespace shardmq::broker {
namespace {

absl::StatusOr<SessionRecord> DecodeBody(std::string_view body) {
  if (body.empty() || body[0] != kClusterBodyFormat) {
    return absl::InvalidArgumentError("unknown message format (another shardmq version?)");
  }
  body.remove_prefix(1);
  return DecodeSessionRecord(kRecordMessage, records::AsBytes(body));
}

}  // namespace

absl::StatusOr<MessageRef> DecodeClusterMessage(std::string_view body, int64_t now_wall_ns,
                                                shard::Clock::time_point now) {
  absl::StatusOr<SessionRecord> record = DecodeBody(body);
  if (!record.ok()) return record.status();
  return RebuildMessage(record->message, now_wall_ns, now);
}

bool PostFromCluster(BrokerLink& link, int shard_count, std::string_view body,
                     const cluster::SharedSource* shared) {
  absl::StatusOr<SessionRecord> record = DecodeBody(body);
  if (!record.ok()) {
    SHARDMQ_LOG(kWarning, "cluster: dropped a message from RabbitMQ: %s",
                record.status().message());
    return true;
  }
  const std::string_view topic = record->message.topic;
  const size_t hash =
      absl::Hash<absl::string_view>{}(absl::string_view(topic.data(), topic.size()));
  const int shard = static_cast<int>(hash % static_cast<size_t>(shard_count));
  std::string group;  // "$share/{group}/{filter}", as the shards key it
  if (shared != nullptr) {
    group.reserve(mqtt::kSharePrefix.size() + shared->group.size() + 1 + shared->filter.size());
    group.append(mqtt::kSharePrefix);
    group.append(shared->group).append("/").append(shared->filter);
  }
  return link.Post(
      shard, [body = std::string(body), group = std::move(group)](shard::ShardHandler& handler) {
        static_cast<BrokerShard&>(handler).RouteFromCluster(body, group);
      });
}

void BrokerShard::AppendClusterBody(const Message& message, std::string& out) {
  std::optional<int64_t> expires_at_ns;
  if (message.has_expiry()) {
    expires_at_ns =
        WallNowNs() + int64_t{message.RemainingExpirySeconds(shard_.Now())} * 1'000'000'000;
  }
  out.push_back(kClusterBodyFormat);
  EncodeMessage(0, 0, message.topic(), message.publisher(), message.qos(), message.retain(),
                expires_at_ns, message.properties(), message.payload(), out);
}

MessageRef BrokerShard::MessageFromClusterBody(std::string_view body) {
  absl::StatusOr<MessageRef> message = DecodeClusterMessage(body, WallNowNs(), shard_.Now());
  if (!message.ok()) {
    SHARDMQ_LOG(kWarning, "cluster: dropped a message from Redis: %s", message.status().message());
    return MessageRef();
  }
  if (!*message) ShardStats::Inc(stats_.dropped_expired);
  return *std::move(message);
}

bool BrokerShard::ExportToCluster(const Message::Fields& fields) {
  cluster_congested_ = false;
  // $SYS is each node's own report about itself.
  if (fields.topic == "$SYS" || fields.topic.starts_with("$SYS/")) return false;
  // Built as subscribers would see it: only the properties they receive,
  // the expiry interval started now.
  MessageRef message = MessageRef::Adopt(Message::Make(fields, shard_.Now()));
  std::string body;
  AppendClusterBody(*message, body);
  if (message->retain() && context_.redis != nullptr) {
    // Redis keeps the cluster's retained set for nodes that start later.
    if (message->payload().empty()) {
      context_.redis->ClearRetained(message->topic());
    } else {
      context_.redis->SetRetained(message->topic(), body);
    }
  }
  cluster_congested_ = context_.cluster->Publish(message->topic(), message->retain(),
                                                 message->qos(), std::move(body));
  return true;
}

void BrokerShard::PauseForCluster(Connection& conn) {
  cluster_congested_ = false;
  if (conn.cluster_paused) return;
  conn.cluster_paused = true;
  ShardStats::Inc(stats_.cluster_pauses);
  cluster_paused_.push_back(conn.id);
  ApplyPauseState(conn);
  if (!cluster_pause_timer_.valid()) ArmClusterPauseCheck();
}

void BrokerShard::ArmClusterPauseCheck() {
  // A few milliseconds: RabbitMQ confirms a batch in about that.
  cluster_pause_timer_ = shard_.ScheduleTimer(std::chrono::milliseconds(5), [this] {
    cluster_pause_timer_ = {};
    if (!context_.cluster->PastCongestion()) {
      ArmClusterPauseCheck();
      return;
    }
    std::vector<shard::ConnId> paused;
    paused.swap(cluster_paused_);
    for (shard::ConnId id : paused) {
      Connection* conn = Find(id);
      if (conn == nullptr || !conn->cluster_paused) continue;
      conn->cluster_paused = false;
      ApplyPauseState(*conn);
    }
  });
}

void BrokerShard::ClusterInterest(const std::string& filter, bool added, PendingSuback* pending,
                                  uint64_t token) {
  // A shared group's messages come through its own queue, shared by the
  // nodes; the node's queue does not bind its filter.
  if (auto shared = topic::ParseSharedSubscription(filter); shared.has_value()) {
    if (added) {
      context_.cluster->SharedAdded(shared->group, shared->filter);
    } else {
      context_.cluster->SharedRemoved(shared->group, shared->filter);
    }
    return;
  }
  if (added && pending != nullptr && token != 0) {
    // The SUBACK waits until the node's queue is bound, so that what any
    // node publishes after it reaches the subscriber.
    ++pending->acks_missing;
    context_.cluster->FilterAdded(filter, [link = context_.link, shard = shard_.id(), token] {
      link->Post(shard, [token](shard::ShardHandler& handler) {
        static_cast<BrokerShard&>(handler).SubackPartDone(token);
      });
    });
  } else if (added) {
    context_.cluster->FilterAdded(filter);
  } else {
    context_.cluster->FilterRemoved(filter);
  }
}

void BrokerShard::RouteFromCluster(std::string_view body, std::string_view shared_group) {
  absl::StatusOr<SessionRecord> record = DecodeBody(body);
  if (!record.ok()) return;  // PostFromCluster checked it
  const MessageRecord& m = record->message;
  // Encoded by another node from a Message: its properties, with what is
  // left of its expiry.
  std::optional<mqtt::Properties> properties = ForwardedProperties(m, WallNowNs());
  if (!properties) {
    ShardStats::Inc(stats_.dropped_expired);
    return;
  }
  Message::Fields fields;
  fields.topic = m.topic;
  fields.payload = m.payload;
  fields.qos = std::min(m.qos, limits_.max_qos);
  fields.retain = m.retain;
  fields.publisher = m.publisher;
  fields.properties = &*properties;
  if (!shared_group.empty()) {
    DeliverFromSharedQueue(fields, std::string(shared_group));
    return;
  }
  // Route, not the client path: no hooks (the publishing node ran them), not
  // exported again. A retained message is stored here too. Shared groups are
  // left out: their copies come from their shared queues.
  Route(fields, /*shared=*/false);
}

void BrokerShard::DeliverFromSharedQueue(const Message::Fields& fields, const std::string& group) {
  // The queue's long-key bindings are supersets (amqp_keys.h): a message
  // the group's filter does not match is not the group's.
  const std::optional<topic::SharedSubscription> parts = topic::ParseSharedSubscription(group);
  if (!parts.has_value() || !topic::FilterMatches(parts->filter, fields.topic)) return;
  MessageRef message = MessageRef::Adopt(Message::Make(fields, shard_.Now()));
  // One member on this node, on whichever shard (DeliverShared). The link
  // consumes the queue only while the node has members, but the last one
  // may leave while a message is on its way: then the message is dropped for
  // the group (already acked to RabbitMQ) and counted (README "Cluster").
  if (!DeliverShared(message, group, 0, nullptr)) {
    ShardStats::Inc(stats_.dropped_no_subscribers);
    NoteDropped({}, *message, DropReason::kNoSubscribers);
  }
}

}  // namespace shardmq::broker
