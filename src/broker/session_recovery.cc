#include "broker/session_recovery.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "broker/record_codec.h"
#include "broker/spill.h"

namespace shardmq::broker {

std::optional<mqtt::Properties> ForwardedProperties(const MessageRecord& record,
                                                    int64_t now_wall_ns) {
  mqtt::Properties properties =
      records::DecodePropertiesBody(record.properties).value_or(mqtt::Properties{});
  if (record.expires_at_ns) {
    // Compared before subtracting: the expiry is read from a log or another
    // node, and one near either end of int64 must not overflow.
    if (*record.expires_at_ns <= now_wall_ns) return std::nullopt;
    const int64_t left_ns = *record.expires_at_ns - now_wall_ns;
    // Whole seconds left, rounded up as Message does.
    const int64_t left_s = left_ns / 1'000'000'000 + (left_ns % 1'000'000'000 != 0 ? 1 : 0);
    properties.message_expiry_interval =
        static_cast<uint32_t>(std::min<int64_t>(left_s, UINT32_MAX));
  }
  return properties;
}

MessageRef RebuildMessage(const MessageRecord& record, int64_t now_wall_ns,
                          shard::Clock::time_point now, uint64_t origin) {
  std::optional<mqtt::Properties> properties = ForwardedProperties(record, now_wall_ns);
  if (!properties) return MessageRef();
  Message::Fields fields;
  fields.topic = record.topic;
  fields.payload = record.payload;
  fields.qos = record.qos;
  fields.retain = record.retain;
  fields.publisher = record.publisher;
  fields.properties = &*properties;
  fields.origin = origin;
  return MessageRef::Adopt(Message::Make(fields, now));
}

SessionReplay::Session* SessionReplay::Find(std::string_view client_id) {
  auto it = sessions_.find(absl::string_view(client_id.data(), client_id.size()));
  return it == sessions_.end() ? nullptr : &it->second;
}

void SessionReplay::EndSession(std::string_view client_id) {
  auto it = sessions_.find(absl::string_view(client_id.data(), client_id.size()));
  if (it == sessions_.end()) return;
  for (uint64_t item : it->second.items) items_.erase(item);
  sessions_.erase(it);
}

absl::Status SessionReplay::Apply(uint8_t type, absl::Span<const uint8_t> payload,
                                  const SpillLocation& where) {
  absl::StatusOr<SessionRecord> decoded = DecodeSessionRecord(type, payload);
  if (!decoded.ok()) return decoded.status();
  SessionRecord& r = *decoded;
  max_number_ = std::max(max_number_, r.commit);  // origins and marks are numbers too
  // Records about a session the log no longer has (it ended, or a snapshot
  // began after them) change nothing.
  switch (type) {
    case kRecordSessionPut: {
      auto [it, inserted] =
          sessions_.try_emplace(absl::string_view(r.client_id.data(), r.client_id.size()));
      RecoveredSession& state = it->second.state;
      if (inserted) state.client_id = std::string(r.client_id);
      state.expiry_interval = r.expiry_interval;
      state.protocol_version = r.protocol_version;
      state.commit_mark = std::max(state.commit_mark, r.commit);
      if (r.username) {
        state.username = std::string(*r.username);
      } else {
        state.username.reset();
      }
      state.offline_since_ns.reset();  // connected now
      break;
    }
    case kRecordSessionOffline:
      if (Session* s = Find(r.client_id)) {
        s->state.offline_since_ns = r.wall_ns;
        s->state.expiry_interval = r.expiry_interval;
      }
      break;
    case kRecordSessionEnd:
      EndSession(r.client_id);
      break;
    case kRecordSubscribe:
      if (Session* s = Find(r.client_id)) s->subscriptions[std::string(r.filter)] = r.options;
      break;
    case kRecordUnsubscribe:
      if (Session* s = Find(r.client_id)) s->subscriptions.erase(std::string(r.filter));
      break;
    case kRecordMessage: {
      auto body = std::make_shared<Body>();
      body->topic = std::string(r.message.topic);
      body->publisher = std::string(r.message.publisher);
      body->properties = std::string(records::AsString(r.message.properties));
      body->payload = std::string(records::AsString(r.message.payload));
      body->qos = r.message.qos;
      body->retain = r.message.retain;
      body->expires_at_ns = r.message.expires_at_ns;
      body->origin = r.commit;
      body->where = where;
      body->where.body = r.body;
      bodies_[r.body] = std::move(body);
      max_number_ = std::max(max_number_, r.body);
      break;
    }
    case kRecordMessageAt: {
      auto body = std::make_shared<Body>();
      body->only_in_log = true;
      body->where = SpillLocation{where.directory, r.segment, r.offset, r.length, r.stored_body};
      oldest_referenced_segment_ = std::min(oldest_referenced_segment_, r.segment);
      bodies_[r.body] = std::move(body);
      max_number_ = std::max(max_number_, r.body);
      break;
    }
    case kRecordQueued: {
      max_number_ = std::max(max_number_, r.item);
      Session* s = Find(r.client_id);
      if (s == nullptr) break;
      auto body = bodies_.find(r.body);
      if (body == bodies_.end()) {
        if (salvage_) {
          ++salvage_skipped_;
          break;
        }
        return absl::DataLossError(
            absl::StrFormat("queued message %d of %s names message %d, which the log does not hold",
                            r.item, r.client_id, r.body));
      }
      Item& item = items_[r.item];
      item.client_id = std::string(r.client_id);
      item.number = r.item;
      item.body = body->second;
      item.item.qos = r.qos;
      item.item.retain = r.retain;
      item.item.shared_group = std::string(r.shared_group);
      item.item.subscription_ids = std::move(r.subscription_ids);
      s->items.insert(r.item);
      break;
    }
    case kRecordSent:
      if (auto it = items_.find(r.item); it != items_.end())
        it->second.item.packet_id = r.packet_id;
      break;
    case kRecordReleased:
      if (auto it = items_.find(r.item); it != items_.end()) {
        it->second.item.released = true;
        it->second.body.reset();  // only the packet id is needed now
      }
      break;
    case kRecordDone:
      if (auto it = items_.find(r.item); it != items_.end()) {
        if (Session* s = Find(it->second.client_id)) s->items.erase(r.item);
        items_.erase(it);
      }
      break;
    case kRecordInboundQos2:
      if (Session* s = Find(r.client_id)) {
        if (r.added) {
          s->inbound_qos2.insert(r.packet_id);
          s->state.commit_mark = std::max(s->state.commit_mark, r.commit);
        } else {
          s->inbound_qos2.erase(r.packet_id);
        }
      }
      break;
    case kRecordWill:
      if (Session* s = Find(r.client_id)) {
        RecoveredWill will;
        will.topic = std::string(r.message.topic);
        will.properties = std::string(records::AsString(r.message.properties));
        will.payload = std::string(records::AsString(r.message.payload));
        will.qos = r.message.qos;
        will.retain = r.message.retain;
        will.due_wall_ns = r.wall_ns;
        s->state.will = std::move(will);
      }
      break;
    case kRecordWillDone:
      if (Session* s = Find(r.client_id)) s->state.will.reset();
      break;
    default:
      break;
  }
  return absl::OkStatus();
}

std::vector<RecoveredSession> SessionReplay::Take(int64_t now_wall_ns, shard::Clock::time_point now,
                                                  Counts& counts, size_t memory_budget) {
  // Items by session, in queue order (item numbers grow as they are queued).
  absl::flat_hash_map<std::string, std::vector<Item*>> by_session;
  for (auto& [number, item] : items_) by_session[item.client_id].push_back(&item);
  // A Message per body, shared by every session that queued it.
  absl::flat_hash_map<const Body*, MessageRef> messages;
  size_t memory = 0;
  std::vector<RecoveredSession> out;
  out.reserve(sessions_.size());
  for (auto& [client_id, session] : sessions_) {
    RecoveredSession& state = session.state;
    // Subtracted from now rather than added to the record's time: an OFFLINE
    // record's wall clock is read from the log, and a far-future one (a
    // clock set wrong, or a record fuzzed) must not overflow.
    if (state.offline_since_ns && state.expiry_interval != 0xFFFFFFFF &&
        *state.offline_since_ns <= now_wall_ns - int64_t{state.expiry_interval} * 1'000'000'000) {
      ++counts.sessions_expired;
      continue;
    }
    state.subscriptions.assign(session.subscriptions.begin(), session.subscriptions.end());
    std::sort(state.subscriptions.begin(), state.subscriptions.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    state.inbound_qos2.assign(session.inbound_qos2.begin(), session.inbound_qos2.end());
    std::sort(state.inbound_qos2.begin(), state.inbound_qos2.end());
    std::vector<Item*>& items = by_session[client_id];
    std::sort(items.begin(), items.end(),
              [](const Item* a, const Item* b) { return a->number < b->number; });
    for (Item* item : items) {
      const Body* body = item->body.get();
      // Beyond the budget a message stays where it is in the log, unless
      // recovery may still drop it as uncommitted (origin: never spilled).
      // (As the shard decides at run time: BrokerShard::ShouldSpill.)
      const bool over_budget =
          memory_budget != 0 && body != nullptr && !body->only_in_log &&
          memory + QueuedMemoryCharge(body->topic.size(), body->payload.size()) > memory_budget &&
          body->origin == 0 && body->where.length != 0 && item->item.packet_id == 0 &&
          item->item.shared_group.empty();
      if (body != nullptr && (body->only_in_log || over_budget)) {
        if (body->expires_at_ns && *body->expires_at_ns <= now_wall_ns) {
          ++counts.messages_expired;
          continue;
        }
        item->item.spilled = body->where;
        item->item.number = item->number;
        ++spilled_;
        state.items.push_back(std::move(item->item));
        continue;
      }
      if (body != nullptr) {
        MessageRef& message = messages[body];
        if (!message) {
          MessageRecord record;
          record.topic = item->body->topic;
          record.publisher = item->body->publisher;
          record.qos = item->body->qos;
          record.retain = item->body->retain;
          record.expires_at_ns = item->body->expires_at_ns;
          record.properties = records::AsBytes(item->body->properties);
          record.payload = records::AsBytes(item->body->payload);
          message = RebuildMessage(record, now_wall_ns, now, item->body->origin);
        }
        if (!message) {
          ++counts.messages_expired;  // its Message Expiry Interval ran out
          continue;
        }
        item->item.message = message;
        // Per copy, as the shard charges queued messages (spill.h).
        memory += QueuedMemoryCharge(body->topic.size(), body->payload.size());
      }
      item->item.number = item->number;
      state.items.push_back(std::move(item->item));
    }
    out.push_back(std::move(state));
  }
  sessions_.clear();
  items_.clear();
  bodies_.clear();
  std::sort(out.begin(), out.end(), [](const RecoveredSession& a, const RecoveredSession& b) {
    return a.client_id < b.client_id;
  });
  return out;
}

size_t DropUncommitted(std::vector<RecoveredSession>& sessions) {
  absl::flat_hash_map<absl::string_view, uint64_t> marks;
  for (const RecoveredSession& s : sessions) marks[s.client_id] = s.commit_mark;
  size_t dropped = 0;
  for (RecoveredSession& s : sessions) {
    auto uncommitted = [&](const RecoveredItem& item) {
      if (!item.message || item.message->origin() == 0) return false;
      const std::string_view publisher = item.message->publisher();
      auto it = marks.find(absl::string_view(publisher.data(), publisher.size()));
      return it != marks.end() && item.message->origin() > it->second;
    };
    auto kept =
        std::stable_partition(s.items.begin(), s.items.end(),
                              [&](const RecoveredItem& item) { return !uncommitted(item); });
    for (auto it = kept; it != s.items.end(); ++it) s.dropped_items.push_back(it->number);
    dropped += static_cast<size_t>(s.items.end() - kept);
    s.items.erase(kept, s.items.end());
  }
  return dropped;
}

}  // namespace shardmq::broker
