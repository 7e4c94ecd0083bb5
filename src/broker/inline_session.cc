// InlineClient sessions on their home shard (shardmq/inline_client.h): the
// tasks the external mailbox runs, and delivery to callbacks.
#include <algorithm>

#include "base/log.h"
#include "broker/broker_shard.h"
#include "mqtt/topic_validation.h"
#include "topic/levels.h"

namespace shardmq::broker {
namespace {

thread_local bool t_shard_thread = false;

// The filter a subscription matches topics with ("$share/g/f" -> "f").
std::string_view MatchFilter(std::string_view filter) {
  if (!mqtt::IsSharedSubscription(filter)) return filter;
  std::string_view rest = filter.substr(mqtt::kSharePrefix.size());
  const size_t slash = rest.find('/');
  return slash == std::string_view::npos ? rest : rest.substr(slash + 1);
}

}  // namespace

bool OnShardThread() { return t_shard_thread; }
void MarkShardThread() { t_shard_thread = true; }

void BrokerShard::InlineOpen(const std::string& client_id, std::shared_ptr<InlineSink> sink,
                             InlineDone done) {
  if (sessions_.contains(client_id)) {
    // A network client's session (online or not) is not ours to take.
    done(absl::AlreadyExistsError(
        absl::StrFormat("client id \"%s\" has a session already", client_id)));
    return;
  }
  Session* session = &sessions_.Add(std::make_unique<Session>(client_id));
  SessionExtra& extra = EnsureExtra(session);
  extra.peer = "inline";
  extra.inline_sink = std::move(sink);
  if (HooksWant(kHookConnection)) context_.hooks.SessionEstablished(InfoFor(*session), false);
  done(uint8_t{0});
}

void BrokerShard::InlineClose(const std::string& client_id, InlineDone done) {
  auto it = sessions_.find(client_id);
  if (it != sessions_.end()) {
    auto extra = extras_.find(it->second.get());
    if (extra != extras_.end() && extra->second->inline_sink != nullptr) {
      EndSession(*it->second, SessionEndReason::kInlineClosed);
    }
  }
  // Callbacks run only on this thread and the session is gone: none can run
  // after this, which is what the destroying thread waits for.
  if (done) done(uint8_t{0});
}

void BrokerShard::InlinePublish(const std::string& client_id, const InlinePublishRequest& request) {
  Message::Fields fields;
  fields.topic = request.topic;
  fields.payload = absl::Span<const uint8_t>(
      reinterpret_cast<const uint8_t*>(request.payload.data()), request.payload.size());
  fields.qos = std::min(request.qos, limits_.max_qos);
  fields.retain = request.retain && limits_.retain_available;
  fields.publisher = client_id;
  mqtt::Properties properties;
  if (!request.user_properties.empty()) {
    for (const auto& [name, value] : request.user_properties) {
      properties.user_properties.emplace_back(name, value);
    }
    fields.properties = &properties;
  }
  std::optional<ArrivedMessage> arrived;
  std::optional<mqtt::Properties> rewritten;
  if (HooksWant(kHookPublish)) {
    ClientInfo client;
    client.client_id = client_id;
    client.remote_address = "inline";
    client.shard = shard_.id();
    client.inline_client = true;
    if (RunArrivedHooks(client, fields, arrived, rewritten).kind != MessageVerdict::Kind::kAccept) {
      if (HooksWant(kHookDropped)) {
        context_.hooks.MessageDropped(client_id, ViewOf(fields), DropReason::kRejectedByHook);
      }
      return;
    }
  }
  // $-topics ($SYS/...) are the broker's own reports, not messages clients
  // sent: counting them would make messages/received grow by itself.
  if (!request.topic.starts_with('$')) {
    stats_.CountReceived(fields.qos, fields.topic.size() + fields.payload.size());
  }
  bool shared_here = true;
  if (context_.cluster != nullptr) [[unlikely]] {
    shared_here = !ExportToCluster(fields);
  }
  Route(fields, shared_here);
}

void BrokerShard::InlineSubscribe(const std::string& client_id, const std::string& filter,
                                  uint8_t qos, InlineCallback callback, InlineDone done) {
  auto it = sessions_.find(client_id);
  if (it == sessions_.end()) {
    done(absl::FailedPreconditionError("the inline client's session has ended"));
    return;
  }
  Session& session = *it->second;
  auto extra = extras_.find(&session);
  if (extra == extras_.end() || extra->second->inline_sink == nullptr) {
    done(absl::FailedPreconditionError("not an inline client's session"));
    return;
  }
  mqtt::TopicLimits limits;
  limits.max_length = limits_.max_topic_length;
  limits.max_levels = limits_.max_topic_levels;
  if (mqtt::ValidateSubscriptionFilter(filter, limits) != mqtt::TopicError::kOk) {
    done(absl::InvalidArgumentError(absl::StrFormat("\"%s\" is not a topic filter", filter)));
    return;
  }
  // Before AddSubscription: retained messages go to this callback.
  extra->second->inline_sink->callbacks[filter] = std::move(callback);
  topic::SubscriptionOptions options;
  options.qos = std::min(qos, limits_.max_qos);
  PendingSuback pending;
  pending.session = &session;
  pending.inline_client_id = client_id;
  const uint64_t token = next_token_++;
  AddSubscription(session, filter, options, &pending, token);
  pending.codes.push_back(static_cast<mqtt::ReasonCode>(options.qos));
  if (HooksWant(kHookSubscribe)) context_.hooks.Subscribed(InfoFor(session), filter, options.qos);
  pending.inline_done = std::move(done);
  if (pending.acks_missing > 0) {
    pending_subacks_.emplace(token, std::move(pending));
  } else {
    FinishSuback(pending);
  }
}

void BrokerShard::InlineUnsubscribe(const std::string& client_id, const std::string& filter,
                                    InlineDone done) {
  auto it = sessions_.find(client_id);
  if (it == sessions_.end()) {
    done(absl::FailedPreconditionError("the inline client's session has ended"));
    return;
  }
  Session& session = *it->second;
  const bool existed = session.subscriptions.contains(filter);
  if (existed) RemoveSubscription(session, filter);
  auto extra = extras_.find(&session);
  if (extra != extras_.end() && extra->second->inline_sink != nullptr) {
    extra->second->inline_sink->callbacks.erase(filter);
  }
  if (HooksWant(kHookSubscribe)) context_.hooks.Unsubscribed(InfoFor(session), filter, existed);
  if (existed) {
    done(uint8_t{0});
  } else {
    done(absl::NotFoundError(absl::StrFormat("no subscription to \"%s\"", filter)));
  }
}

void BrokerShard::DeliverInline(Session& session, InlineSink& sink, const MessageRef& message,
                                uint8_t qos, bool retain, const std::string* shared_group) {
  InlineMessage delivered;
  delivered.topic = message->topic();
  delivered.payload = std::string_view(reinterpret_cast<const char*>(message->payload().data()),
                                       message->payload().size());
  delivered.qos = qos;
  delivered.retain = retain;
  delivered.publisher = message->publisher();
  if (message->properties() != nullptr) {
    delivered.user_properties.assign(message->properties()->user_properties.begin(),
                                     message->properties()->user_properties.end());
  }
  // Copy the callbacks first: one may unsubscribe (from another thread's
  // task later, but also by ending things here).
  std::vector<std::pair<std::string, InlineCallback>> matching;
  for (const auto& [filter, callback] : sink.callbacks) {
    if (shared_group != nullptr ? filter == *shared_group
                                : !mqtt::IsSharedSubscription(filter) &&
                                      topic::FilterMatches(MatchFilter(filter), message->topic())) {
      matching.emplace_back(filter, callback);
    }
  }
  for (const auto& [filter, callback] : matching) {
    delivered.filter = filter;
    if (callback) callback(delivered);
  }
  stats_.CountSent(qos, message->topic().size() + message->payload().size());
  if (HooksWant(kHookDeliver))
    context_.hooks.MessageDelivered(InfoFor(session), ViewOf(*message), qos);
}

}  // namespace shardmq::broker
