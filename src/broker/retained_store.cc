// Durable retained messages: logging each change once, on the topic's owner
// shard, and flushing the shard's log every loop turn (README "Durable
// state"; recovery is in retained_recovery.cc, acknowledgements that wait
// for the disk in durable_acks.cc).
#include <algorithm>
#include <chrono>

#include "base/log.h"
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
  if (message.payload().empty()) {
    // Strictly increasing even if the wall clock steps back, so that the
    // owner's order is the order recovery sees.
    retained_stamp_ = std::max(wall, retained_stamp_ + 1);
    record_scratch_.clear();
    EncodeRetainClear(retained_stamp_, message.topic(), record_scratch_);
    AppendScratch(kRecordRetainClear);
    return;
  }
  AppendRetainedSet(message, wall);
}

void BrokerShard::AppendRetainedSet(const Message& message, int64_t wall) {
  retained_stamp_ = std::max(wall, retained_stamp_ + 1);
  std::optional<int64_t> expires_at;
  if (message.has_expiry()) {
    expires_at = wall + int64_t{message.RemainingExpirySeconds(shard_.Now())} * 1'000'000'000;
  }
  record_scratch_.clear();
  EncodeRetainSet(retained_stamp_, message.topic(), message.qos(), expires_at, message.properties(),
                  message.payload(), record_scratch_);
  AppendScratch(kRecordRetainSet);
}

void BrokerShard::OnLoopTurnEnd() {
  if (log_ == nullptr) return;
  // A snapshot names where each spilled message is, so it waits until all
  // have a place (the next Flush gives them one).
  if (log_->CompactionDue(context_.compaction_bytes) && !log_->failed() &&
      (spill_ == nullptr || !spill_->any_pending())) {
    WriteSnapshot();
  }
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

void BrokerShard::WriteSnapshot() {
  // Everything this shard's log must hold to rebuild what it owns: the
  // retained messages of its topics and its logged sessions. Written in one
  // go, so no other record falls inside the snapshot; the writer deletes the
  // segments before it once the snapshot is on disk.
  const uint64_t before = log_->bytes_since_snapshot();
  const auto began = std::chrono::steady_clock::now();
  log_->BeginSnapshot();
  const int64_t wall = WallNowNs();
  const shard::Clock::time_point now = shard_.Now();
  size_t retained = 0;
  retained_.ForEach([&](std::string_view topic, const MessageRef& message) {
    if (RetainedOwner(topic, shard_.shard_count()) != shard_.id() || topic.starts_with("$SYS/") ||
        message->Expired(now)) {
      return;
    }
    AppendRetainedSet(*message, wall);
    ++retained;
  });
  // Messages are logged afresh inside the snapshot.
  logged_message_ = MessageRef();
  size_t sessions = 0;
  for (auto& [client_id, session] : sessions_) {
    if (!session->logged) continue;
    const Connection* conn = session->connection;
    LogWholeSession(*session, conn != nullptr ? static_cast<uint8_t>(conn->version) : 0);
    ++sessions;
  }
  log_->EndSnapshot();
  ShardStats::Inc(stats_.store_snapshots);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - began).count();
  // The shard served nobody meanwhile: worth an operator's eye when long.
  if (ms >= 100) {
    SHARDMQ_LOG(kInfo,
                "shard %d: log snapshot of %d retained messages and %d sessions took %.1f ms "
                "(%d bytes)",
                shard_.id(), retained, sessions, ms, log_->bytes_since_snapshot());
  } else {
    SHARDMQ_LOG(kDebug,
                "shard %d: log snapshot of %d retained messages and %d sessions in %.1f ms, %d "
                "bytes (%d bytes logged since the last one)",
                shard_.id(), retained, sessions, ms, log_->bytes_since_snapshot(), before);
  }
}

}  // namespace shardmq::broker
