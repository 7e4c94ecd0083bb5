#include "broker/hooks_dispatch.h"

#include <bit>

namespace shardmq::broker {

void HookDispatch::Add(std::shared_ptr<Hooks> hooks) {
  if (hooks == nullptr) return;
  const uint32_t events = hooks->Events() & kHookAll;
  for (int bit = 0; bit < kEventKinds; ++bit) {
    if (events & (1u << bit)) by_event_[bit].push_back(hooks.get());
  }
  events_ |= events;
  all_.push_back(std::move(hooks));
}

const std::vector<Hooks*>& HookDispatch::For(uint32_t event) const {
  return by_event_[std::countr_zero(event)];
}

namespace {

template <typename Call>
Decision FirstDecisive(const std::vector<Hooks*>& hooks, Call call) {
  for (Hooks* hook : hooks) {
    Decision decision = call(*hook);
    if (decision.kind != Decision::Kind::kNoOpinion) return decision;
  }
  return Decision::NoOpinion();
}

}  // namespace

Decision HookDispatch::Accept(std::string_view remote_address, int shard) const {
  return FirstDecisive(For(kHookConnection),
                       [&](Hooks& h) { return h.OnAccept(remote_address, shard); });
}

AuthDecision HookDispatch::Authenticate(const ConnectRequest& request) const {
  return FirstDecisive(For(kHookConnection), [&](Hooks& h) { return h.OnAuthenticate(request); });
}

Decision HookDispatch::PublishCheck(const ClientInfo& client, std::string_view topic, uint8_t qos,
                                    bool retain) const {
  return FirstDecisive(For(kHookPublish),
                       [&](Hooks& h) { return h.OnPublishCheck(client, topic, qos, retain); });
}

MessageVerdict HookDispatch::MessageArrived(const ClientInfo& publisher,
                                            ArrivedMessage& message) const {
  for (Hooks* hook : For(kHookPublish)) {
    MessageVerdict verdict = hook->OnMessageArrived(publisher, message);
    if (verdict.kind != MessageVerdict::Kind::kAccept) return verdict;
    // The next hook sees the rewrite.
    if (message.new_topic) message.message.topic = *message.new_topic;
    if (message.new_payload) message.message.payload = *message.new_payload;
    if (message.new_user_properties) {
      message.message.user_properties.assign(message.new_user_properties->begin(),
                                             message.new_user_properties->end());
    }
  }
  return MessageVerdict::Accept();
}

Decision HookDispatch::Subscribe(const ClientInfo& client, SubscribeRequest& request) const {
  const uint8_t asked = request.qos;
  Decision decision =
      FirstDecisive(For(kHookSubscribe), [&](Hooks& h) { return h.OnSubscribe(client, request); });
  // A hook may only lower the grant.
  if (request.qos > asked) request.qos = asked;
  return decision;
}

Decision HookDispatch::Unsubscribe(const ClientInfo& client, std::string_view filter) const {
  return FirstDecisive(For(kHookSubscribe),
                       [&](Hooks& h) { return h.OnUnsubscribe(client, filter); });
}

Decision HookDispatch::DeliverCheck(const ClientInfo& subscriber,
                                    const MessageView& message) const {
  return FirstDecisive(For(kHookDeliver),
                       [&](Hooks& h) { return h.OnDeliverCheck(subscriber, message); });
}

void HookDispatch::SessionEstablished(const ClientInfo& client, bool resumed) const {
  for (Hooks* h : For(kHookConnection)) {
    if (resumed) {
      h->OnSessionResumed(client);
    } else {
      h->OnSessionEstablished(client);
    }
  }
}

void HookDispatch::SessionTerminated(const ClientInfo& client, SessionEndReason why) const {
  for (Hooks* h : For(kHookConnection)) h->OnSessionTerminated(client, why);
}

void HookDispatch::ClientDisconnected(const ClientInfo& client, DisconnectReason why) const {
  for (Hooks* h : For(kHookConnection)) h->OnClientDisconnected(client, why);
}

void HookDispatch::Subscribed(const ClientInfo& client, std::string_view filter,
                              uint8_t qos) const {
  for (Hooks* h : For(kHookSubscribe)) h->OnSubscribed(client, filter, qos);
}

void HookDispatch::Unsubscribed(const ClientInfo& client, std::string_view filter,
                                bool existed) const {
  for (Hooks* h : For(kHookSubscribe)) h->OnUnsubscribed(client, filter, existed);
}

void HookDispatch::MessageDelivered(const ClientInfo& subscriber, const MessageView& message,
                                    uint8_t qos) const {
  for (Hooks* h : For(kHookDeliver)) h->OnMessageDelivered(subscriber, message, qos);
}

void HookDispatch::MessageDropped(std::string_view client_id, const MessageView& message,
                                  DropReason why) const {
  for (Hooks* h : For(kHookDropped)) h->OnMessageDropped(client_id, message, why);
}

void HookDispatch::WillSent(std::string_view client_id, const MessageView& will) const {
  for (Hooks* h : For(kHookWill)) h->OnWillSent(client_id, will);
}

void HookDispatch::BrokerStarted() const {
  for (Hooks* h : For(kHookBroker)) h->OnBrokerStarted();
}

void HookDispatch::BrokerStopping() const {
  for (Hooks* h : For(kHookBroker)) h->OnBrokerStopping();
}

}  // namespace shardmq::broker

const char* shardmq::ToString(DropReason reason) {
  switch (reason) {
    case DropReason::kNoSubscribers:
      return "no subscribers";
    case DropReason::kQueueFull:
      return "queue full";
    case DropReason::kSlowSubscriber:
      return "slow subscriber";
    case DropReason::kExpired:
      return "expired";
    case DropReason::kTooLarge:
      return "too large for the subscriber";
    case DropReason::kNotAuthorized:
      return "not authorized to receive";
    case DropReason::kRejectedByHook:
      return "rejected by a hook";
    case DropReason::kPublishNotAllowed:
      return "publish not allowed";
  }
  return "unknown";
}

const char* shardmq::ToString(DisconnectReason reason) {
  switch (reason) {
    case DisconnectReason::kClientDisconnect:
      return "client disconnected";
    case DisconnectReason::kClientDisconnectWithWill:
      return "client disconnected with will";
    case DisconnectReason::kConnectionLost:
      return "connection lost";
    case DisconnectReason::kKeepAliveTimeout:
      return "keep-alive timeout";
    case DisconnectReason::kProtocolError:
      return "protocol error";
    case DisconnectReason::kTakenOver:
      return "session taken over";
    case DisconnectReason::kServerShutdown:
      return "server shutting down";
    case DisconnectReason::kNotAuthorized:
      return "not authorized";
    case DisconnectReason::kRateLimited:
      return "publish rate exceeded";
    case DisconnectReason::kAdministrative:
      return "disconnected by the administrator";
  }
  return "unknown";
}

const char* shardmq::ToString(SessionEndReason reason) {
  switch (reason) {
    case SessionEndReason::kClosed:
      return "closed";
    case SessionEndReason::kCleanStart:
      return "clean start";
    case SessionEndReason::kExpired:
      return "expired";
    case SessionEndReason::kInlineClosed:
      return "inline client closed";
  }
  return "unknown";
}
