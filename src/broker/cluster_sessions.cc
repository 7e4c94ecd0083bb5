// Clustering with Redis (README "Cluster", cluster/redis_link.h): one owner
// per client id across the nodes, and persistent sessions that any node can
// resume. Everything here runs only when context_.redis is set.
//
// What a session keeps in Redis (s:<client>, written through by its owner):
//   "p"           expiry interval u32 (the session is persistent)
//   "o"           wall-clock ns i64 its connection ended (while offline)
//   "f" + filter  QoS u8 | option bits u8 | subscription id u32
// and q:<client>, the messages queued while it is parked: a persistent
// session that went offline keeps its subscriptions on its node, but what
// they match goes to Redis, not the node's memory, so the session survives
// its node and resumes anywhere. Each queued entry is
//   QoS u8 | retain u8 | id count u16 | subscription ids u32... |
//   a cluster body (cluster_bridge.h: format byte + MESSAGE record).
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "base/log.h"
#include "base/log_throttle.h"
#include "broker/broker_shard.h"
#include "broker/cluster_bridge.h"
#include "broker/record_codec.h"
#include "broker/retained_recovery.h"
#include "broker/session_records.h"
#include "cluster/redis_link.h"

namespace shardmq::broker {
namespace {

// After a takeover, messages already on their way through RabbitMQ to the
// old node for the session still arrive there for a moment. The old node
// keeps the session's subscriptions this long after it let the session go,
// sending what they match to the session's queue in Redis, and the new node
// reads that queue again a second later (so a message published just
// before the client moved is not lost; one published just after may come
// twice, once each way: at least once, as across nodes generally).
constexpr auto kHandoffGrace = std::chrono::seconds(2);
constexpr auto kDrainAfter = std::chrono::seconds(3);

constexpr std::string_view kFieldPersistent = "p";
constexpr std::string_view kFieldOffline = "o";
constexpr char kFieldFilterPrefix = 'f';

uint8_t OptionBits(const topic::SubscriptionOptions& options) {
  return static_cast<uint8_t>((options.no_local ? 1 : 0) | (options.retain_as_published ? 2 : 0) |
                              ((options.retain_handling & 3) << 2));
}

std::string EncodeSubscription(const topic::SubscriptionOptions& options) {
  std::string out;
  records::PutU8(options.qos, out);
  records::PutU8(OptionBits(options), out);
  records::PutU32(options.subscription_id, out);
  return out;
}

std::optional<topic::SubscriptionOptions> DecodeSubscription(std::string_view value) {
  if (value.size() != 6) return std::nullopt;
  const auto* p = reinterpret_cast<const uint8_t*>(value.data());
  topic::SubscriptionOptions options;
  options.qos = std::min<uint8_t>(p[0], 2);
  options.no_local = (p[1] & 1) != 0;
  options.retain_as_published = (p[1] & 2) != 0;
  options.retain_handling = static_cast<uint8_t>((p[1] >> 2) & 3);
  options.subscription_id =
      uint32_t{p[2]} | uint32_t{p[3]} << 8 | uint32_t{p[4]} << 16 | uint32_t{p[5]} << 24;
  return options;
}

template <typename T>
std::optional<T> DecodeLittleEndian(std::string_view value) {
  if (value.size() != sizeof(T)) return std::nullopt;
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) {
    v |= uint64_t{static_cast<uint8_t>(value[i])} << (8 * i);
  }
  return static_cast<T>(v);
}

}  // namespace

bool BrokerShard::HoldForClaim(Connection& conn, std::string_view client_id,
                               absl::Span<const uint8_t> connect_bytes,
                               const ClientLimits& limits) {
  // Without Redis the node serves its own clients alone rather than not at
  // all; the id is claimed again at the client's next CONNECT.
  if (!context_.redis->Stats().connected) {
    SHARDMQ_LOG_THROTTLED(kWarning,
                          "cluster: Redis is not reachable; %s connects without claiming its "
                          "client id across the nodes",
                          client_id);
    return false;
  }
  Connection::HeldConnect& held =
      *(conn.Extra().held = std::make_unique<Connection::HeldConnect>());
  held.connect.assign(reinterpret_cast<const char*>(connect_bytes.data()), connect_bytes.size());
  held.limits = limits;
  conn.state = Connection::State::kClaimPending;
  shard_.PauseReading(conn.id);
  const uint64_t token = ++claim_tokens_;
  pending_claims_.emplace(token, PendingClaim{conn.id, std::string(client_id)});
  context_.redis->Claim(client_id, token);
  // A claim waits at most a lease for another node's answer; if Redis went
  // away under it, the client is served by this node alone after that (the
  // claim's late answer is still applied: KeepClaimedState).
  shard_.ScheduleTimer(context_.redis->options().lease + std::chrono::seconds(1), [this, token] {
    auto pending = pending_claims_.find(token);
    if (pending == pending_claims_.end()) return;
    SHARDMQ_LOG_THROTTLED(kWarning,
                          "cluster: no answer from Redis for client id %s; it connects without "
                          "a claim across the nodes",
                          pending->second.client_id);
    cluster::ClaimResult local;
    local.client_id = pending->second.client_id;
    local.token = token;
    local.previous_owner = context_.redis->options().node_id;
    FinishClaim(std::move(local));
  });
  return true;
}

void BrokerShard::FinishClaim(cluster::ClaimResult result) {
  if (auto drain = drains_.find(result.token); drain != drains_.end()) {
    const bool discard = drain->second;
    drains_.erase(drain);
    if (!discard) FinishDrain(result);
    return;
  }
  auto pending = pending_claims_.find(result.token);
  if (pending == pending_claims_.end()) {
    // Answered after the client went on without it: what it took from
    // Redis stays here.
    if (result.won) KeepClaimedState(result);
    return;
  }
  const shard::ConnId id = pending->second.id;
  pending_claims_.erase(pending);
  Connection* conn = Find(id);
  if (conn == nullptr || conn->state != Connection::State::kClaimPending) {
    // The client went while its id was claimed: what the claim took from
    // Redis stays with this node as a parked session (or the id is let go).
    if (result.won) KeepClaimedState(result);
    return;
  }
  std::unique_ptr<Connection::HeldConnect> held = conn->TakeHeld();
  conn->state = Connection::State::kAwaitingConnect;
  if (!result.won) {
    // Another node's CONNECT for the same id won the race.
    ConnackAndClose(*conn, conn->version, mqtt::ReasonCode::kServerBusy);
    return;
  }
  const bool clean_start = ContinueHeldConnect(*conn, *held, &result);
  if (!result.previous_owner.empty() &&
      result.previous_owner != context_.redis->options().node_id &&
      sessions_.contains(result.client_id)) {
    // After a clean start what the old node forwards belongs to the
    // discarded session: read, and dropped.
    ScheduleDrain(result.client_id, /*discard=*/clean_start);
  }
}

void BrokerShard::ScheduleDrain(const std::string& client_id, bool discard) {
  const uint64_t token = ++claim_tokens_;
  drains_.emplace(token, discard);
  shard_.ScheduleTimer(kDrainAfter,
                       [this, client_id, token] { context_.redis->Drain(client_id, token); });
}

void BrokerShard::FinishDrain(cluster::ClaimResult& drained) {
  if (!drained.won || drained.state.queued.empty()) return;
  auto it = sessions_.find(drained.client_id);
  if (it == sessions_.end()) return;  // it ended meanwhile, and its messages with it
  Session& session = *it->second;
  for (std::string& entry : drained.state.queued) {
    if (session.parked) {
      context_.redis->Push(session.client_id, std::move(entry), limits_.max_queued_messages);
    } else {
      EnqueueFromCluster(session, entry);
    }
  }
  PumpQueue(session);
}

void BrokerShard::ApplyClaim(const std::string& client_id, cluster::ClaimResult& claim) {
  auto it = sessions_.find(client_id);
  Session* session = it == sessions_.end() ? nullptr : it->second.get();
  if (session == nullptr) {
    if (!claim.found) return;
    session = InstallClusterSession(client_id, claim.state);
    if (session == nullptr) return;
  } else if (session->parked) {
    session->parked = false;
  }
  // What waited in Redis comes before anything newer.
  for (const std::string& entry : claim.state.queued) EnqueueFromCluster(*session, entry);
}

void BrokerShard::KeepClaimedState(cluster::ClaimResult& claim) {
  auto it = sessions_.find(claim.client_id);
  if (it != sessions_.end()) {
    // Still here (its earlier connection, or parked): what Redis held goes
    // back to its queue there.
    Session& session = *it->second;
    for (std::string& entry : claim.state.queued) {
      if (session.parked) {
        context_.redis->Push(session.client_id, std::move(entry), limits_.max_queued_messages);
      } else {
        EnqueueFromCluster(session, entry);
      }
    }
    return;
  }
  Session* session = claim.found ? InstallClusterSession(claim.client_id, claim.state) : nullptr;
  if (session == nullptr) {
    context_.redis->Forget(claim.client_id);
    return;
  }
  for (std::string& entry : claim.state.queued) {
    context_.redis->Push(session->client_id, std::move(entry), limits_.max_queued_messages);
  }
  ParkSession(*session, WallNowNs());
}

Session* BrokerShard::InstallClusterSession(const std::string& client_id,
                                            const cluster::SessionState& state,
                                            int64_t* offline_since_out) {
  std::optional<uint32_t> expiry;
  std::optional<int64_t> offline_since;
  std::vector<std::pair<std::string, topic::SubscriptionOptions>> subscriptions;
  for (const auto& [field, value] : state.fields) {
    if (field == kFieldPersistent) {
      expiry = DecodeLittleEndian<uint32_t>(value);
    } else if (field == kFieldOffline) {
      offline_since = DecodeLittleEndian<int64_t>(value);
    } else if (!field.empty() && field[0] == kFieldFilterPrefix) {
      if (auto options = DecodeSubscription(value)) {
        subscriptions.emplace_back(field.substr(1), *options);
      }
    }
  }
  // Only persistent sessions are written to Redis; anything else is a
  // leftover (a session that ended while Redis was away).
  if (!expiry.has_value() || *expiry == 0) return nullptr;
  Session* session = &sessions_.Add(std::make_unique<Session>(client_id));
  session->persistent = true;
  session->expiry_interval = *expiry;
  if (offline_since_out != nullptr) *offline_since_out = offline_since.value_or(0);
  PendingSuback ignored;
  for (const auto& [filter, options] : subscriptions) {
    AddSubscription(*session, filter, options, &ignored, 0);
  }
  return session;
}

void BrokerShard::EnqueueFromCluster(Session& session, std::string_view entry) {
  if (entry.size() < 4) return;
  const auto* p = reinterpret_cast<const uint8_t*>(entry.data());
  const uint8_t qos = std::min<uint8_t>(p[0], 2);
  const bool retain = p[1] != 0;
  const size_t id_count = size_t{p[2]} | size_t{p[3]} << 8;
  entry.remove_prefix(4);
  if (entry.size() < id_count * 4) return;
  mqtt::SubscriptionIds ids;
  for (size_t i = 0; i < id_count; ++i) {
    ids.push_back(*DecodeLittleEndian<uint32_t>(entry.substr(i * 4, 4)));
  }
  entry.remove_prefix(id_count * 4);
  MessageRef message = MessageFromClusterBody(entry);
  if (!message) return;  // expired meanwhile, or unreadable (logged)
  Enqueue(session, message, qos, retain, ids, nullptr);
}

void BrokerShard::PushParked(Session& session, const Message& message, uint8_t qos, bool retain,
                             absl::Span<const uint32_t> ids) {
  if (qos == 0 && !limits_.queue_qos0_offline) return;
  std::string entry;
  records::PutU8(qos, entry);
  records::PutU8(retain ? 1 : 0, entry);
  records::PutU16(static_cast<uint16_t>(ids.size()), entry);
  for (uint32_t id : ids) records::PutU32(id, entry);
  AppendClusterBody(message, entry);
  context_.redis->Push(session.client_id, std::move(entry), limits_.max_queued_messages);
}

void BrokerShard::ParkSession(Session& session, int64_t offline_since_wall_ns) {
  std::string offline;
  records::PutU64(static_cast<uint64_t>(offline_since_wall_ns), offline);
  context_.redis->SetField(session.client_id, kFieldOffline, std::move(offline));
  WriteSessionSettings(session);
  MoveMessagesToCluster(session);
  session.parked = true;
}

void BrokerShard::MoveMessagesToCluster(Session& session) {
  // Unacknowledged messages first, in the order they were sent: they go
  // again, as a new session's queue, to wherever the client returns. (A QoS
  // 2 message whose PUBREC came is the client's already and is not resent.)
  std::vector<std::pair<uint64_t, const InflightMessage*>> inflight;
  for (const auto& [packet_id, message] : session.inflight) {
    if (!message.released && message.message) inflight.emplace_back(message.sequence, &message);
  }
  std::sort(inflight.begin(), inflight.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [sequence, message] : inflight) {
    PushParked(session, *message->message, message->qos, message->retain,
               message->subscription_ids);
  }
  session.inflight.clear();
  for (const QueuedMessage& queued : session.queue) {
    if (queued.message) {
      PushParked(session, *queued.message, queued.qos, queued.retain, queued.subscription_ids);
    }
  }
  ForgetQueue(session);
}

void BrokerShard::WriteSessionSettings(Session& session) {
  std::string expiry;
  records::PutU32(session.expiry_interval, expiry);
  context_.redis->SetField(session.client_id, kFieldPersistent, std::move(expiry));
}

void BrokerShard::ClusterSessionConnected(Session& session, bool session_present,
                                          bool had_remote_state) {
  // Connected again (also when Redis was away and nothing was claimed):
  // its messages come to it, not to Redis.
  session.parked = false;
  if (!forwarders_.empty()) forwarders_.erase(session.client_id);
  if (!session.persistent) {
    // It ends with its connection: nothing of it belongs in Redis.
    if (had_remote_state) context_.redis->ResetSession(session.client_id);
    return;
  }
  if (!session_present) context_.redis->ResetSession(session.client_id);
  WriteSessionSettings(session);
  context_.redis->DeleteField(session.client_id, kFieldOffline);
}

void BrokerShard::ClusterSubscriptionChanged(Session& session, const std::string& filter,
                                             const topic::SubscriptionOptions* options) {
  if (!session.persistent || releasing_session_) return;
  std::string field(1, kFieldFilterPrefix);
  field += filter;
  if (options != nullptr) {
    context_.redis->SetField(session.client_id, field, EncodeSubscription(*options));
  } else {
    context_.redis->DeleteField(session.client_id, field);
  }
}

void BrokerShard::ClusterSessionEnded(Session& session, SessionEndReason why) {
  if (releasing_session_) return;
  if (why == SessionEndReason::kCleanStart) {
    // A new connection follows on this node: the id stays owned here.
    context_.redis->ResetSession(session.client_id);
  } else {
    context_.redis->Forget(session.client_id);
  }
}

void BrokerShard::ReleaseForTakeover(const std::string& client_id, const std::string& by_node,
                                     uint64_t token) {
  auto it = sessions_.find(client_id);
  // An inline client's session is not for taking over (shardmq/inline_client.h).
  bool inline_session = false;
  if (it != sessions_.end() && !extras_.empty()) {
    auto extra = extras_.find(it->second.get());
    inline_session = extra != extras_.end() && extra->second->inline_sink != nullptr;
  }
  if (it != sessions_.end() && !inline_session) {
    Session& session = *it->second;
    ShardStats::Inc(stats_.cluster_takeovers);
    if (Connection* old = session.connection; old != nullptr) {
      // Only one connection per client id across the cluster too
      // [MQTT-3.1.4-2]: the old one goes with DISCONNECT 0x8E [MQTT-3.1.4-3].
      if (HooksWant(kHookConnection)) {
        context_.hooks.ClientDisconnected(InfoFor(session), DisconnectReason::kTakenOver);
      }
      if (old->version == mqtt::ProtocolVersion::kV5) {
        mqtt::Disconnect disconnect;
        disconnect.reason_code = mqtt::ReasonCode::kSessionTakenOver;
        SendPacket(*old, disconnect);
      }
      // As a takeover on one node: the will is due unless it has a delay
      // and the session lives on [MQTT-3.1.3-9].
      if (std::unique_ptr<WillMessage> will = old->TakeWill();
          will != nullptr && (!session.persistent || will->delay_interval == 0)) {
        PublishWill(*will);
      }
      old->session = nullptr;
      old->state = Connection::State::kClosing;
      session.connection = nullptr;
      shard_.Close(old->id);
    }
    // Shared-subscription copies go to the group's other members here.
    RedeliverShared(session);
    if (session.persistent && !session.parked) MoveMessagesToCluster(session);
    ForgetOffline(session);  // a delayed will is cancelled: the client is back
    if (session.persistent) {
      // Forwards to Redis for the hand-off grace (kHandoffGrace).
      session.parked = true;
      const uint64_t generation = ++forwarder_generations_;
      forwarders_[client_id] = generation;
      shard_.ScheduleTimer(kHandoffGrace,
                           [this, client_id, generation] { EndForwarding(client_id, generation); });
    } else {
      DropReleasedSession(session);
    }
  }
  context_.redis->Released(client_id, by_node, token);
}

void BrokerShard::EndForwarding(const std::string& client_id, uint64_t generation) {
  auto forwarder = forwarders_.find(client_id);
  if (forwarder == forwarders_.end() || forwarder->second != generation) return;
  forwarders_.erase(forwarder);
  auto it = sessions_.find(client_id);
  if (it != sessions_.end() && it->second->parked) DropReleasedSession(*it->second);
}

void BrokerShard::DropReleasedSession(Session& session) {
  // The session lives on at the other node: dropped here without touching
  // what Redis holds of it.
  releasing_session_ = true;
  std::vector<std::string> filters;
  filters.reserve(session.subscriptions.size());
  for (const auto& [filter, options] : session.subscriptions) filters.push_back(filter);
  for (const std::string& filter : filters) RemoveSubscription(session, filter);
  releasing_session_ = false;
  ReleaseBackpressure(session);
  SettleRetainedBacklog(session, /*keep=*/false);
  if (!extras_.empty()) extras_.erase(&session);
  ForgetQueue(session);
  std::string client_id = session.client_id;
  sessions_.erase(client_id);  // destroys the session
}

void BrokerShard::AdoptSession(const std::string& client_id, cluster::SessionState state) {
  if (sessions_.contains(client_id)) return;  // connected again here meanwhile
  int64_t offline_since = 0;
  Session* session = InstallClusterSession(client_id, state, &offline_since);
  if (session == nullptr) {
    // Not persistent: it ended with its node.
    context_.redis->Forget(client_id);
    return;
  }
  ShardStats::Inc(stats_.cluster_adopted);
  // Offline since its node lost it (or since it went, if it had): its
  // expiry counts from then.
  const int64_t wall = WallNowNs();
  const int64_t since = offline_since != 0 ? offline_since : wall;
  ParkSession(*session, since);
  if (session->expiry_interval != Session::kNeverExpires) {
    const int64_t left_ns = since + int64_t{session->expiry_interval} * 1'000'000'000 - wall;
    SessionWentOffline(
        *session, since,
        static_cast<uint32_t>(std::max<int64_t>(0, (left_ns + 999'999'999) / 1'000'000'000)));
  }
}

}  // namespace shardmq::broker
