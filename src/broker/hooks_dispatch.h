// HookDispatch: the registered shardmq::Hooks, called in order, with the
// chain rule of shardmq/hooks.h (the first decisive answer wins).
//
// Cost: BrokerShard asks wants(event) before building any argument, which is
// one load and a bit test; with no hook registered every bit is 0, so the
// hot paths make no virtual call and allocate nothing.
//
// Lifecycle and threads: filled by Broker::Impl before the shards start, then
// read-only; the calls below run on whichever shard thread makes them.
#pragma once

#include <array>
#include <memory>
#include <vector>

#include "shardmq/hooks.h"

namespace shardmq::broker {

class HookDispatch {
 public:
  // Before start only.
  void Add(std::shared_ptr<Hooks> hooks);

  bool wants(uint32_t events) const { return (events_ & events) != 0; }
  bool empty() const { return all_.empty(); }

  // Decisions: NoOpinion from every hook means allowed.
  Decision Accept(std::string_view remote_address, int shard) const;
  AuthDecision Authenticate(const ConnectRequest& request) const;
  Decision PublishCheck(const ClientInfo& client, std::string_view topic, uint8_t qos,
                        bool retain) const;
  MessageVerdict MessageArrived(const ClientInfo& publisher, ArrivedMessage& message) const;
  Decision Subscribe(const ClientInfo& client, SubscribeRequest& request) const;
  Decision Unsubscribe(const ClientInfo& client, std::string_view filter) const;
  Decision DeliverCheck(const ClientInfo& subscriber, const MessageView& message) const;

  // Notifications: every hook that wants the event.
  void SessionEstablished(const ClientInfo& client, bool resumed) const;
  void SessionTerminated(const ClientInfo& client, SessionEndReason why) const;
  void ClientDisconnected(const ClientInfo& client, DisconnectReason why) const;
  void Subscribed(const ClientInfo& client, std::string_view filter, uint8_t qos) const;
  void Unsubscribed(const ClientInfo& client, std::string_view filter, bool existed) const;
  void MessageDelivered(const ClientInfo& subscriber, const MessageView& message,
                        uint8_t qos) const;
  void MessageDropped(std::string_view client_id, const MessageView& message, DropReason why) const;
  void WillSent(std::string_view client_id, const MessageView& will) const;
  void BrokerStarted() const;
  void BrokerStopping() const;

 private:
  static constexpr int kEventKinds = 7;  // the bits of HookEvents
  const std::vector<Hooks*>& For(uint32_t event) const;

  std::vector<std::shared_ptr<Hooks>> all_;
  std::array<std::vector<Hooks*>, kEventKinds> by_event_;
  uint32_t events_ = 0;
};

}  // namespace shardmq::broker
