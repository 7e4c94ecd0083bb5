// Acknowledgements that wait for the disk (--durability=sync). A QoS 1/2
// PUBLISH hands the message to the broker with PUBACK/PUBREC [MQTT-4.3.2,
// MQTT-4.3.3]; with `sync` that promise is kept across a crash, so the
// acknowledgement goes out only once every record the message caused is on
// stable storage: the publisher's inbound QoS 2 id here, each persistent
// subscriber's copy on its shard, the retained record on the topic's owner.
//
// Records on other shards are covered by a barrier: kMailDurableBarrier
// follows the message's own mail into the same FIFO mailbox, so when a shard
// reads it, it has appended whatever the message made it append; it answers
// once its log's WhenDurable says those records are stored. Many clients'
// acknowledgements ride on the same group commit. (A shared-subscription
// message that a second shard forwards onward is not followed by the
// barrier beyond the first hop; README "Durable state" says so.)
//
// A persistent publisher's QoS 2 message is also committed (in both
// durable modes): its INBOUND QOS2 record is appended only once every copy
// is stored, in the order the publisher sent its messages, so a restarted
// broker that remembers the packet id (and takes a resent PUBLISH for a
// duplicate) has every copy too. With `sync` the copies carry the message's
// origin, wait for the commit before they are sent, and recovery drops the
// ones no commit covers (session_records.h, "Commit"); with `async` PUBREC
// goes out at once and only the order is kept.
#include "base/log.h"
#include "broker/broker_shard.h"
#include "broker/mail.h"

namespace shardmq::broker {

void BrokerShard::AckWhenDurable(Connection& conn, const mqtt::PubAck& ack,
                                 uint64_t sequence_before, bool wait_here) {
  // Only what the message made this shard append is waited for: a message
  // nobody stores is acknowledged at once, even while a full disk holds
  // other records back.
  wait_here |= log_->next_sequence() != sequence_before;
  if (!wait_here && durable_targets_.empty()) {
    SendPacket(conn, ack);
    return;
  }
  const uint64_t token = next_token_++;
  PendingDurableAck& pending = durable_acks_[token];
  pending.conn = conn.id;
  pending.ack = ack;
  pending.missing = 1;  // this shard's own log
  durable_targets_.ForEach([&](uint32_t target) {
    if (static_cast<int>(target) == shard_.id()) return;
    ++pending.missing;
    shard::MailItem item;
    item.kind = kMailDurableBarrier;
    item.arg = token;
    PostMail(static_cast<int>(target), item);
  });
  durable_targets_.Clear();
  if (!wait_here) {
    OnDurableAck(token, true);
    return;
  }
  log_->WhenDurable([this, token](absl::Status status) { OnDurableAck(token, status.ok()); });
}

void BrokerShard::OnDurableBarrier(int from_shard, uint64_t token) {
  auto answer = [this, from_shard, token](bool stored) {
    shard::MailItem item;
    item.kind = kMailDurableAck;
    item.arg = token;
    item.aux = stored ? 1 : 0;
    PostMail(from_shard, item);
  };
  // All shards have a log or none does; without one there is nothing to
  // wait for. Nor is there when no message from that shard since its last
  // barrier made this one append anything (OnMail keeps count).
  if (log_ == nullptr || !appended_for_[static_cast<size_t>(from_shard)]) {
    answer(true);
    return;
  }
  appended_for_[static_cast<size_t>(from_shard)] = false;
  log_->WhenDurable([answer](absl::Status status) { answer(status.ok()); });
}

void BrokerShard::OnDurableAck(uint64_t token, bool stored) {
  auto it = durable_acks_.find(token);
  if (it == durable_acks_.end()) return;
  PendingDurableAck& pending = it->second;
  pending.stored &= stored;
  if (--pending.missing > 0) return;
  if (!pending.commit) {
    FinishDurableAck(token);
    return;
  }
  pending.ready = true;
  DrainCommits(pending.committer);
}

void BrokerShard::CommitWhenDurable(Connection& conn, const mqtt::PubAck& pubrec, uint64_t origin,
                                    uint64_t sequence_before, bool ack_now) {
  Session& session = *conn.session;
  const uint64_t token = next_token_;  // the one AckWhenDurable takes
  commit_queue_[session.client_id].push_back(token);
  if (ack_now) SendPacket(conn, pubrec);
  // Registered before AckWhenDurable, which may complete at once.
  PendingDurableAck& pending = durable_acks_[token];
  pending.commit = true;
  pending.acked = ack_now;
  pending.committer = session.client_id;
  pending.committer_session = &session;
  pending.origin = origin;
  pending.targets = durable_targets_;
  AckWhenDurable(conn, pubrec, sequence_before, /*wait_here=*/true);
}

bool BrokerShard::CommitPending(const std::string& client_id, uint16_t packet_id) const {
  auto it = commit_queue_.find(client_id);
  if (it == commit_queue_.end()) return false;
  for (uint64_t token : it->second) {
    auto ack = durable_acks_.find(token);
    if (ack != durable_acks_.end() && ack->second.ack.packet_id == packet_id) return true;
  }
  return false;
}

void BrokerShard::ReleasePendingCommit(const std::string& client_id, uint16_t packet_id) {
  auto it = commit_queue_.find(client_id);
  if (it == commit_queue_.end()) return;
  for (uint64_t token : it->second) {
    auto ack = durable_acks_.find(token);
    if (ack != durable_acks_.end() && ack->second.ack.packet_id == packet_id &&
        !ack->second.released) {
      ack->second.released = true;
      return;
    }
  }
}

void BrokerShard::DrainCommits(std::string client_id) {
  auto queue = commit_queue_.find(client_id);
  if (queue == commit_queue_.end()) return;
  // In PUBLISH order: a later message's INBOUND QOS2 record must not reach
  // the disk before an earlier one's, or the commit mark would cover a
  // message whose copies are not all stored.
  while (!queue->second.empty()) {
    const uint64_t token = queue->second.front();
    auto it = durable_acks_.find(token);
    if (it != durable_acks_.end() && !it->second.ready) return;
    queue->second.pop_front();
    if (it == durable_acks_.end()) continue;
    PendingDurableAck& pending = it->second;
    auto session = sessions_.find(client_id);
    if (!pending.stored || session == sessions_.end() ||
        session->second.get() != pending.committer_session || !session->second->logged) {
      // Not stored (a log failed), or the session is gone: nothing to
      // commit; the copies are released and the acknowledgement, if anyone
      // is left to get it, says what happened.
      FinishCommit(token);
      continue;
    }
    Session& publisher = *session->second;
    if (pending.released) {
      FinishCommit(token);  // nothing left to remember
      continue;
    }
    LogInboundQos2(publisher, pending.ack.packet_id, true, pending.origin);
    if (pending.origin != 0) commit_marks_[&publisher] = pending.origin;
    log_->WhenDurable([this, token](absl::Status status) {
      auto again = durable_acks_.find(token);
      if (again == durable_acks_.end()) return;
      again->second.stored &= status.ok();
      FinishCommit(token);
    });
  }
  commit_queue_.erase(queue);
}

void BrokerShard::FinishCommit(uint64_t token) {
  auto it = durable_acks_.find(token);
  if (it == durable_acks_.end()) return;
  PendingDurableAck pending = std::move(it->second);
  durable_acks_.erase(it);
  // The copies held for the commit go out, on every shard that has some
  // (also when a log failed: holding them for ever would help nobody).
  if (pending.origin != 0) {
    pending.targets.ForEach([&](uint32_t target) {
      if (static_cast<int>(target) == shard_.id()) return;
      shard::MailItem item;
      item.kind = kMailCommitted;
      item.arg = pending.origin;
      PostMail(static_cast<int>(target), item);
    });
    OnCommitted(pending.origin);
  }
  if (pending.acked) return;  // async: PUBREC went out with the PUBLISH
  // PUBREC to the publisher's connection now, which may be a newer one than
  // the PUBLISH came on (it resent the PUBLISH there, and waits).
  auto session = sessions_.find(pending.committer);
  if (session == sessions_.end() || session->second.get() != pending.committer_session) return;
  Connection* conn = session->second->connection;
  if (conn == nullptr || conn->state != Connection::State::kConnected) return;
  durable_acks_[token] = std::move(pending);
  durable_acks_[token].conn = conn->id;
  FinishDurableAck(token);
}

void BrokerShard::FinishDurableAck(uint64_t token) {
  auto it = durable_acks_.find(token);
  PendingDurableAck pending = std::move(it->second);
  durable_acks_.erase(it);
  // The connection may have gone (or its slot been reused: the id's
  // generation tells) while the disk worked: then there is nobody to tell,
  // and the client resends the PUBLISH when it returns.
  Connection* conn = Find(pending.conn);
  if (conn == nullptr || conn->state != Connection::State::kConnected) return;
  mqtt::PubAck& ack = pending.ack;
  if (!pending.stored) {
    // A log failed for good: not stored, so not acknowledged as taken.
    // MQTT 5 can say so; a 3.x client can only be disconnected, and resends
    // on its next connection.
    if (conn->version != mqtt::ProtocolVersion::kV5) {
      DisconnectAndClose(*conn, mqtt::ReasonCode::kUnspecifiedError, "message could not be stored");
      return;
    }
    if (ack.type == mqtt::PacketType::kPuback || ack.type == mqtt::PacketType::kPubrec) {
      ack.reason_code = mqtt::ReasonCode::kUnspecifiedError;
      if (ack.type == mqtt::PacketType::kPubrec && conn->session != nullptr) {
        conn->session->inbound_qos2.erase(ack.packet_id);
      }
    }
  }
  SendPacket(*conn, ack);
}

}  // namespace shardmq::broker
