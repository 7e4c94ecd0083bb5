// What a BrokerShard tells an operator's tools about itself: gauges, its
// sessions, the retained set, and an administrative disconnect. Each runs on
// the shard thread as a task from the external mailbox (broker/shard_query.h)
// and walks the shard's own maps, so the data path keeps no extra counters
// for them: the cost falls on the one who asks.
#include "base/log.h"
#include "broker/broker_shard.h"

namespace shardmq::broker {

ShardGauges BrokerShard::Gauges() const {
  ShardGauges gauges;
  gauges.shard = shard_.id();
  gauges.connections_open = shard_.open_connections();
  gauges.retained = retained_.size();
  if (log_ != nullptr) {
    gauges.store_log_bytes = log_->live_segment_bytes();
    gauges.store_pending_bytes = log_->pending_bytes();
    gauges.store_stalled = log_->error().ok() ? 0 : 1;
  }
  gauges.queued_memory_bytes = queued_memory_;
  if (spill_ != nullptr) gauges.store_spilled_messages = spill_->copies;
  for (const auto& [id, session] : sessions_) {
    // Inline clients (the $SYS publisher, the admin API's) are the broker's
    // own, not clients an operator counts; their subscriptions are real.
    if (!IsInlineSession(*session)) {
      ++gauges.sessions;
      if (session->connection != nullptr) ++gauges.clients_connected;
    }
    gauges.subscriptions += session->subscriptions.size();
    gauges.inflight += session->inflight.size();
    gauges.queued += session->queue.size();
    gauges.queued_bytes += session->queued_bytes;
  }
  return gauges;
}

std::vector<ClientView> BrokerShard::Clients(std::string_view only_id) const {
  std::vector<ClientView> out;
  auto describe = [&](const Session& session) {
    ClientView& view = out.emplace_back();
    view.client_id = session.client_id;
    view.shard = shard_.id();
    view.persistent = session.persistent;
    view.inline_client = IsInlineSession(session);
    view.connected = session.connection != nullptr || view.inline_client;
    if (const Connection* conn = session.connection; conn != nullptr) {
      view.address = conn->Peer();
      view.protocol_version = static_cast<int>(conn->version);
      view.keep_alive = conn->keep_alive;
    }
    if (!extras_.empty()) {
      if (auto it = extras_.find(&session); it != extras_.end()) {
        if (it->second->username.has_value()) view.username = *it->second->username;
        if (view.inline_client) view.address = it->second->peer;
      }
    }
    view.subscriptions.reserve(session.subscriptions.size());
    for (const auto& [filter, subscription] : session.subscriptions) {
      view.subscriptions.emplace_back(filter, subscription.options.qos);
    }
    view.inflight = session.inflight.size();
    view.queued = session.queue.size();
    view.queued_bytes = session.queued_bytes;
  };
  if (!only_id.empty()) {
    auto it = sessions_.find(only_id);
    if (it != sessions_.end()) describe(*it->second);
    return out;
  }
  out.reserve(sessions_.size());
  for (const auto& [id, session] : sessions_) describe(*session);
  return out;
}

std::vector<RetainedView> BrokerShard::Retained(std::string_view filter) {
  std::vector<RetainedView> out;
  retained_.MatchFilter(filter, [&](std::string_view topic, MessageRef& message) {
    RetainedView& view = out.emplace_back();
    view.topic = std::string(topic);
    view.payload.assign(reinterpret_cast<const char*>(message->payload().data()),
                        message->payload().size());
    view.qos = message->qos();
  });
  return out;
}

absl::Status BrokerShard::AdminDisconnect(std::string_view client_id, bool discard_session) {
  auto it = sessions_.find(client_id);
  if (it == sessions_.end()) {
    return absl::NotFoundError(absl::StrFormat("no session for client id \"%s\"", client_id));
  }
  Session& session = *it->second;
  if (IsInlineSession(session)) {
    return absl::FailedPreconditionError(
        "an inline client's session belongs to the embedding program");
  }
  SHARDMQ_LOG(kInfo, "administrator disconnects %s%s", session.client_id,
              discard_session ? " and discards its session" : "");
  if (Connection* conn = session.connection; conn != nullptr) {
    // A session that is not persistent ends when its connection does
    // (DetachSession), will and all.
    if (discard_session) session.persistent = false;
    conn->disconnect_reason = DisconnectReason::kAdministrative;
    DisconnectAndClose(*conn, mqtt::ReasonCode::kAdministrativeAction,
                       "disconnected by the administrator");
    return absl::OkStatus();
  }
  if (!discard_session) {
    return absl::FailedPreconditionError(
        absl::StrFormat("client \"%s\" is not connected (its session is kept)", client_id));
  }
  EndSession(session, SessionEndReason::kClosed);
  return absl::OkStatus();
}

}  // namespace shardmq::broker
