// BrokerShard's side of the publish rate limits (publish_throttle.h).
#include "base/log_throttle.h"
#include "broker/broker_shard.h"

namespace shardmq::broker {

bool BrokerShard::ThrottlePublisher(Connection& conn, uint64_t size) {
  PublishThrottle& throttle = *conn.throttle;
  const int64_t now = shard_.NowNs();
  const int64_t wait = throttle.Count(now, size);
  if (wait == 0 || throttle.holding) return true;
  if (!throttle.NoteThrottled(now)) {
    ShardStats::Inc(stats_.publishers_disconnected);
    SHARDMQ_LOG_THROTTLED(kWarning, "disconnecting %s (%s): over its publish rate for %d s",
                          conn.Peer(), conn.session->client_id,
                          PublishThrottle::kMaxThrottledNs / 1'000'000'000);
    conn.disconnect_reason = DisconnectReason::kRateLimited;
    DisconnectAndClose(conn, mqtt::ReasonCode::kMessageRateTooHigh, "message rate too high");
    return false;
  }
  throttle.holding = true;
  ShardStats::Inc(stats_.publishers_throttled);
  SHARDMQ_LOG_THROTTLED(kWarning,
                        "throttling %s (%s): publishing faster than its limit (%d msg/s, %d "
                        "bytes/s; 0 = none), reading paused for %d ms",
                        conn.Peer(), conn.session->client_id, throttle.limits.publish_rate,
                        throttle.limits.publish_bytes_rate, wait / 1'000'000);
  ApplyPauseState(conn);
  ScheduleThrottleEnd(conn, wait);
  return true;
}

void BrokerShard::ScheduleThrottleEnd(Connection& conn, int64_t wait_ns) {
  conn.throttle->resume_timer = shard_.ScheduleTimer(std::chrono::nanoseconds(wait_ns),
                                                     [this, id = conn.id] { EndThrottle(id); });
}

void BrokerShard::EndThrottle(shard::ConnId id) {
  Connection* conn = Find(id);
  if (conn == nullptr || conn->throttle == nullptr) return;
  PublishThrottle& throttle = *conn->throttle;
  throttle.resume_timer = {};
  throttle.holding = false;
  throttle.last_end_ns = shard_.NowNs();
  // What was held is decoded now, and may throttle the client again.
  if (!throttle.backlog.empty()) {
    std::string backlog = std::move(throttle.backlog);
    throttle.backlog.clear();
    OnData(id, absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(backlog.data()),
                                         backlog.size()));
    conn = Find(id);
    if (conn == nullptr || conn->state != Connection::State::kConnected) return;
  }
  ApplyPauseState(*conn);
}

void BrokerShard::HoldThrottled(Connection& conn, absl::Span<const uint8_t> bytes) {
  std::string& backlog = conn.throttle->backlog;
  // Reading stops within a few receive buffers of the pause; more than
  // that is a client we can no longer slow down.
  if (backlog.size() + bytes.size() > conn.decoder.options().max_packet_size + (256u << 10)) {
    ShardStats::Inc(stats_.publishers_disconnected);
    SHARDMQ_LOG_THROTTLED(kWarning, "disconnecting %s (%s): its input outran the publish throttle",
                          conn.Peer(), conn.session->client_id);
    conn.disconnect_reason = DisconnectReason::kRateLimited;
    DisconnectAndClose(conn, mqtt::ReasonCode::kMessageRateTooHigh, "message rate too high");
    return;
  }
  backlog.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

}  // namespace shardmq::broker
