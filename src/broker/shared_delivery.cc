// Shared subscriptions across shards (MQTT 5 section 4.8.2).
//
// Each shard knows, for every shared group ("$share/{group}/{filter}"), how
// many members it has on every shard (kMailSharedCount). The shard where a
// PUBLISH arrives picks, per matching group, one shard by weighted round
// robin over those counts, so each member anywhere gets an equal share; that
// shard picks one local member round robin, connected members first. A
// message that finds its chosen shard without members (they left while the
// mail travelled) moves on to another shard that has some.
#include <algorithm>

#include "base/log.h"
#include "broker/broker_shard.h"
#include "broker/mail.h"
#include "broker/session_records.h"
#include "mqtt/topic_validation.h"

namespace shardmq::broker {
namespace {

// Splits "$share/{group}/{filter}" (validated when subscribed).
mqtt::SharedSubscription SplitShared(std::string_view key) {
  std::string_view rest = key.substr(mqtt::kSharePrefix.size());
  size_t slash = rest.find('/');
  return {rest.substr(0, slash), rest.substr(slash + 1)};
}

std::string SharedKey(std::string_view group, std::string_view filter) {
  std::string key(mqtt::kSharePrefix);
  key.append(group.data(), group.size()).append("/").append(filter.data(), filter.size());
  return key;
}

}  // namespace

void BrokerShard::CollectSharedGroups(std::string_view topic) {
  shared_scratch_.clear();
  if (shared_groups_.empty()) return;
  auto add = [&](std::string_view group, std::string_view filter) {
    std::string key = SharedKey(group, filter);
    if (std::find(shared_scratch_.begin(), shared_scratch_.end(), key) == shared_scratch_.end()) {
      shared_scratch_.push_back(std::move(key));
    }
  };
  index_.MatchShared(topic, [&](std::string_view group, std::string_view filter,
                                topic::SharedGroup&) { add(group, filter); });
  interest_.MatchShared(topic, [&](std::string_view group, std::string_view filter,
                                   const topic::ShardSet&) { add(group, filter); });
}

bool BrokerShard::DeliverShared(const MessageRef& message, const std::string& group, int hops,
                                const Session* exclude) {
  auto it = shared_groups_.find(group);
  if (it == shared_groups_.end()) return false;
  SharedGroupState& state = it->second;
  const int self = shard_.id();
  auto weight = [&](int shard) -> uint64_t {
    uint64_t members = state.members[shard];
    // The session leaving does not count (RedeliverShared).
    if (shard == self && exclude != nullptr && members > 0 &&
        exclude->subscriptions.contains(group)) {
      --members;
    }
    return members;
  };
  uint64_t total = 0;
  for (int shard = 0; shard < shard_.shard_count(); ++shard) total += weight(shard);
  if (total == 0) return false;
  uint64_t position = state.cursor++ % total;
  int target = 0;
  for (; target < shard_.shard_count(); ++target) {
    uint64_t w = weight(target);
    if (position < w) break;
    position -= w;
  }
  if (target == self) return DeliverToLocalMember(message, group, exclude);
  auto* delivery = new SharedDelivery{MessageRef(message).Release(), group, hops + 1};
  shard::MailItem item;
  item.kind = kMailSharedPublish;
  item.ptr = delivery;
  PostMail(target, item);
  if (log_ != nullptr) durable_targets_.Add(static_cast<uint32_t>(target));
  return true;
}

bool BrokerShard::DeliverToLocalMember(const MessageRef& message, const std::string& group,
                                       const Session* exclude) {
  mqtt::SharedSubscription parts = SplitShared(group);
  topic::SharedGroup* members = index_.FindSharedGroup(parts.group, parts.filter);
  if (members == nullptr) return false;
  // Round robin, skipping the leaving session and, while any member is
  // connected, the offline ones (their persistent sessions would only queue).
  const size_t count = members->members().size();
  const topic::Subscription* fallback = nullptr;
  for (size_t tries = 0; tries < count; ++tries) {
    const topic::Subscription& pick = members->PickRoundRobin();
    auto* session = reinterpret_cast<Session*>(pick.subscriber);
    if (session == exclude) continue;
    // (An InlineClient has no connection but is always there.)
    if (session->connection == nullptr && !IsInlineSession(*session)) {
      if (fallback == nullptr) fallback = &pick;
      continue;
    }
    fallback = &pick;
    break;
  }
  if (fallback == nullptr) return false;
  // Copy: Deliver may not touch the index, but the reference is only
  // guaranteed until the index changes.
  const topic::Subscription chosen = *fallback;
  uint32_t id_storage = chosen.options.subscription_id;
  absl::Span<const uint32_t> ids(&id_storage, id_storage != 0 ? 1 : 0);
  Deliver(*reinterpret_cast<Session*>(chosen.subscriber), message,
          std::min(chosen.options.qos, message->qos()),
          chosen.options.retain_as_published && message->retain(), ids, &group);
  return true;
}

void BrokerShard::AnnounceSharedCount(const std::string& group) {
  mqtt::SharedSubscription parts = SplitShared(group);
  topic::SharedGroup* members = index_.FindSharedGroup(parts.group, parts.filter);
  const uint32_t count = members == nullptr ? 0 : static_cast<uint32_t>(members->members().size());
  SetSharedCount(group, shard_.id(), count);
  for (int target = 0; target < shard_.shard_count(); ++target) {
    if (target == shard_.id()) continue;
    shard::MailItem item;
    item.kind = kMailSharedCount;
    item.ptr = new SharedCount{group, count};
    PostMail(target, item);
  }
}

void BrokerShard::SetSharedCount(const std::string& group, int shard, uint32_t members) {
  auto it = shared_groups_.find(group);
  if (it == shared_groups_.end()) {
    if (members == 0) return;
    it = shared_groups_.emplace(group, SharedGroupState{}).first;
    it->second.members.assign(static_cast<size_t>(shard_.shard_count()), 0);
  }
  it->second.members[shard] = members;
  if (std::all_of(it->second.members.begin(), it->second.members.end(),
                  [](uint32_t m) { return m == 0; })) {
    shared_groups_.erase(it);
  }
}

void BrokerShard::RedeliverShared(Session& session) {
  // QoS 1 messages in flight, and messages still queued (not yet being
  // sent), go to another member at once (MQTT 5 4.8.2 allows it as soon as
  // the connection is lost). QoS 2 messages in flight stay: their delivery
  // must complete to this client if it returns [MQTT-4.8.2-4] and must not
  // go to another client if its session ends [MQTT-4.8.2-5].
  std::vector<std::pair<MessageRef, std::unique_ptr<std::string>>> moving;
  for (auto it = session.inflight.begin(); it != session.inflight.end();) {
    InflightMessage& inflight = it->second;
    if (inflight.shared_group != nullptr && inflight.qos == 1) {
      LogItem(kRecordDone, inflight.log_item);
      moving.emplace_back(std::move(inflight.message), std::move(inflight.shared_group));
      session.inflight.erase(it++);
    } else {
      ++it;
    }
  }
  if (!session.queue.empty()) {
    MessageQueue<QueuedMessage> kept;
    size_t kept_bytes = 0;
    while (!session.queue.empty()) {
      QueuedMessage queued = std::move(session.queue.front());
      session.queue.pop_front();
      if (queued.shared_group != nullptr && queued.message) {
        // (Shared copies are never kept only in the log: spill.h.)
        LogItem(kRecordDone, queued.log_item);
        ChargeQueued(queued, false);
        moving.emplace_back(std::move(queued.message), std::move(queued.shared_group));
      } else {
        kept_bytes += queued.bytes;
        kept.push_back(std::move(queued));
      }
    }
    session.queue = std::move(kept);
    session.queued_bytes = kept_bytes;
  }
  for (auto& [message, group] : moving) {
    if (DeliverShared(message, *group, 0, &session)) continue;
    // No other member anywhere: a persistent session keeps it for later.
    if (session.persistent) {
      Enqueue(session, message, message->qos(), false, {}, group.get());
    }
  }
}

}  // namespace shardmq::broker
