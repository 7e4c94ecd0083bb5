// Durable retained messages: logging each change once, on the topic's owner
// shard, flushing the shard's log every loop turn, and (--durability=sync)
// holding a retained QoS 1/2 PUBLISH's acknowledgement until its record is
// on stable storage (DESIGN.md "Durable state"; recovery is in
// retained_recovery.cc).
#include <algorithm>

#include "broker/broker_shard.h"
#include "broker/retained_records.h"
#include "broker/retained_recovery.h"

namespace shardmq::broker {
namespace {

constexpr int64_t kDiskFullRetryNs = 1'000'000'000;

}  // namespace

void BrokerShard::LogRetainedIfOwner(const Message& message) {
  if (log_ == nullptr || RetainedOwner(message.topic(), shard_.shard_count()) != shard_.id()) {
    return;
  }
  // $SYS topics are the broker's own, published again every sys_interval
  // and from scratch after a restart: storing them would only grow the log
  // and bring back stale figures.
  if (message.topic().starts_with("$SYS/")) return;
  const int64_t wall = WallNowNs();
  // Strictly increasing even if the wall clock steps back, so that the
  // owner's order is the order recovery sees.
  retained_stamp_ = std::max(wall, retained_stamp_ + 1);
  record_scratch_.clear();
  uint8_t type = kRecordRetainClear;
  if (message.payload().empty()) {
    EncodeRetainClear(retained_stamp_, message.topic(), record_scratch_);
  } else {
    type = kRecordRetainSet;
    std::optional<int64_t> expires_at;
    if (message.has_expiry()) {
      expires_at = wall + int64_t{message.RemainingExpirySeconds(shard_.Now())} * 1'000'000'000;
    }
    EncodeRetainSet(retained_stamp_, message.topic(), message.qos(), expires_at,
                    message.properties(), message.payload(), record_scratch_);
  }
  log_->Append(type, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(record_scratch_.data()),
                                         record_scratch_.size()));
}

void BrokerShard::OnLoopTurnEnd() {
  if (log_ == nullptr) return;
  // Group commit: everything appended this turn goes out in one write. While
  // the broker stops, the async mode's fdatasync is due at once, so a clean
  // stop leaves nothing for a power loss to take (the loop waits for it).
  log_->Flush(NowNs() + (stopping_ ? context_.durability_flush_ns : 0));
  ArmLogTimer();
}

void BrokerShard::ArmLogTimer() {
  if (log_timer_.valid() || log_->failed()) return;
  int64_t delay_ns = 0;
  if (!log_->error().ok()) {
    delay_ns = kDiskFullRetryNs;  // a full disk: retry the held write
  } else if (log_->unsynced()) {
    delay_ns = std::max<int64_t>(0, log_->next_sync_ns() - NowNs());
  } else {
    return;
  }
  log_timer_ = shard_.ScheduleTimer(std::chrono::nanoseconds(delay_ns), [this] {
    log_timer_ = {};
    log_->Flush(NowNs());
    ArmLogTimer();
  });
}

void BrokerShard::AckWhenRetainedDurable(Connection& conn, const mqtt::PubAck& ack,
                                         std::string_view topic) {
  auto pending = std::make_unique<RetainAck>();
  pending->conn = conn.id;
  pending->type = ack.type;
  pending->packet_id = ack.packet_id;
  pending->reason_code = ack.reason_code;
  pending->from_shard = shard_.id();
  const int owner = RetainedOwner(topic, shard_.shard_count());
  if (owner == shard_.id()) {
    OnRetainDurableMail(std::move(pending));
    return;
  }
  // Posted after Route's kMailRetain to the same shard, so it arrives after
  // it: the owner has appended the record by then.
  shard::MailItem item;
  item.kind = kMailRetainDurable;
  item.ptr = pending.release();
  shard_.Post(owner, item);
}

void BrokerShard::OnRetainDurableMail(std::unique_ptr<RetainAck> pending) {
  // Runs on the owner shard. A shard without a log (cannot happen: all or
  // none have one) answers "stored" rather than holding the ack for ever.
  if (log_ == nullptr) {
    pending->stored = true;
    FinishRetainAck(*pending);
    return;
  }
  log_->WhenDurable([this, p = std::move(pending)](absl::Status status) mutable {
    p->stored = status.ok();
    if (p->from_shard == shard_.id()) {
      FinishRetainAck(*p);
      return;
    }
    const int to = p->from_shard;
    shard::MailItem item;
    item.kind = kMailRetainAck;
    item.ptr = p.release();
    shard_.Post(to, item);
  });
}

void BrokerShard::FinishRetainAck(const RetainAck& pending) {
  // The connection may have gone (or its slot been reused: the id's
  // generation tells) while the disk worked: then there is nobody to tell,
  // and the client resends the PUBLISH when it returns.
  Connection* conn = Find(pending.conn);
  if (conn == nullptr || conn->state != Connection::State::kConnected) return;
  mqtt::PubAck ack;
  ack.type = pending.type;
  ack.packet_id = pending.packet_id;
  ack.reason_code = pending.reason_code;
  if (!pending.stored) {
    // The log failed for good: not stored, so not acknowledged as taken.
    // MQTT 5 can say so; a 3.x client can only be disconnected, and resends
    // on its next connection.
    if (conn->version != mqtt::ProtocolVersion::kV5) {
      DisconnectAndClose(*conn, mqtt::ReasonCode::kUnspecifiedError,
                         "retained message could not be stored");
      return;
    }
    ack.reason_code = mqtt::ReasonCode::kUnspecifiedError;
    if (ack.type == mqtt::PacketType::kPubrec) conn->session->inbound_qos2.erase(ack.packet_id);
  }
  SendPacket(*conn, ack);
}

}  // namespace shardmq::broker
