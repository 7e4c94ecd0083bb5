// What happens to a session between connections (MQTT 5 sections 3.1.2.11.2
// and 3.1.3.2.2): its Session Expiry Interval counts down while it is offline,
// and an MQTT 5 will with a Will Delay Interval waits that long before it is
// published. Both are timers on the session's home shard; a connection that
// resumes the session cancels both and the delayed will is never sent
// [MQTT-3.1.3-9]; a session that expires first publishes its will as it ends.
#include <chrono>
#include <string>

#include "base/log.h"
#include "broker/broker_shard.h"
#include "broker/retained_recovery.h"
#include "broker/will.h"

namespace shardmq::broker {

WillProperties::WillProperties(const mqtt::Properties& source) {
  // Reserve everything first: the views below point into `storage`, which
  // must not reallocate once they exist.
  size_t bytes = source.content_type.value_or("").size() +
                 source.response_topic.value_or("").size() +
                 (source.correlation_data ? source.correlation_data->size() : 0);
  for (const auto& [name, value] : source.user_properties) bytes += name.size() + value.size();
  storage.reserve(bytes);
  auto copy = [this](std::string_view text) {
    const size_t at = storage.size();
    storage.append(text);
    return std::string_view(storage.data() + at, text.size());
  };
  properties.payload_format_indicator = source.payload_format_indicator;
  properties.message_expiry_interval = source.message_expiry_interval;
  if (source.content_type) properties.content_type = copy(*source.content_type);
  if (source.response_topic) properties.response_topic = copy(*source.response_topic);
  if (source.correlation_data) {
    std::string_view data =
        copy(std::string_view(reinterpret_cast<const char*>(source.correlation_data->data()),
                              source.correlation_data->size()));
    properties.correlation_data =
        absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()), data.size());
  }
  for (const auto& [name, value] : source.user_properties) {
    std::string_view stored_name = copy(name);
    properties.user_properties.emplace_back(stored_name, copy(value));
  }
}

void BrokerShard::SessionWentOffline(Session& session, int64_t offline_since_wall_ns) {
  SessionWentOffline(session, offline_since_wall_ns, session.expiry_interval);
}

void BrokerShard::SessionWentOffline(Session& session, int64_t offline_since_wall_ns,
                                     uint32_t expiry_seconds) {
  if (session.expiry_interval == Session::kNeverExpires) return;
  const Session* key = &session;
  OfflineState& state = offline_[key];
  state.offline_since_wall_ns = offline_since_wall_ns;
  state.expiry_timer = shard_.ScheduleTimer(std::chrono::seconds(expiry_seconds), [this, key] {
    auto it = offline_.find(key);
    if (it == offline_.end()) return;
    it->second.expiry_timer = {};
    Session& expired = *const_cast<Session*>(key);
    ShardStats::Inc(stats_.sessions_expired);
    SHARDMQ_LOG(kDebug, "session %s expired after %d s offline", expired.client_id,
                expired.expiry_interval);
    EndSession(expired,
               SessionEndReason::kExpired);  // publishes a will still waiting out its delay
  });
}

void BrokerShard::DelayWill(Session& session, std::unique_ptr<WillMessage> will,
                            uint32_t delay_seconds, int64_t due_wall_ns) {
  const Session* key = &session;
  OfflineState& state = offline_[key];
  state.delayed_will = std::move(will);
  state.will_due_wall_ns = due_wall_ns;
  state.will_timer = shard_.ScheduleTimer(std::chrono::seconds(delay_seconds), [this, key] {
    auto it = offline_.find(key);
    if (it == offline_.end()) return;
    it->second.will_timer = {};
    std::unique_ptr<WillMessage> due = std::move(it->second.delayed_will);
    // Nothing left to wait for: the session's entry goes unless it expires.
    if (!it->second.expiry_timer.valid()) offline_.erase(it);
    if (due != nullptr) {
      LogWillDone(*const_cast<Session*>(key));
      PublishWill(*due);
    }
  });
}

void BrokerShard::SessionResumed(Session& session) {
  // A will still waiting is dropped unsent [MQTT-3.1.3-9].
  if (ForgetOffline(session) != nullptr) LogWillDone(session);
}

std::unique_ptr<WillMessage> BrokerShard::ForgetOffline(Session& session) {
  auto it = offline_.find(&session);
  if (it == offline_.end()) return nullptr;
  OfflineState& state = it->second;
  if (state.expiry_timer.valid()) shard_.CancelTimer(state.expiry_timer);
  if (state.will_timer.valid()) shard_.CancelTimer(state.will_timer);
  std::unique_ptr<WillMessage> will = std::move(state.delayed_will);
  offline_.erase(it);
  return will;
}

}  // namespace shardmq::broker
