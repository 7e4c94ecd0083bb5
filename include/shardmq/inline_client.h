// shardmq/inline_client.h: publish and subscribe from the embedding program,
// without a socket.
//
// Example:
//   auto client = broker->NewInlineClient("app");      // after Start()
//   (*client)->Subscribe("sensors/+/temp", 1, [](const shardmq::InlineMessage& m) {
//     // runs on the client id's home shard thread: never block here
//   });
//   (*client)->Publish("cmd/lamp", "on", /*qos=*/1);
//
// Semantics: an InlineClient is a session like a network client's, on its
// client id's home shard, with a clean (non-persistent) session that ends
// when the object is destroyed. Its messages are routed exactly as a
// network client's PUBLISH (retained messages stored and sent, QoS
// downgraded to the subscription's, no-local and shared subscriptions
// honoured), and it receives what its subscriptions match, retained messages
// included, exactly once per matching subscription: MQTT merges overlapping
// subscriptions of one session into one delivery, here each matching
// subscription's callback is called once (the callback identifies the
// subscription, like an MQTT 5 Subscription Identifier). Hooks see its
// messages in OnMessageArrived (ClientInfo::inline_client is true) but it
// is not asked for OnPublishCheck/OnSubscribe: the embedding program is
// trusted. A network CONNECT with an inline client's id is refused (CONNACK
// 0x85 / 0x02) while the inline client lives.
//
// Threads: every method may be called from any thread that is not a shard
// thread (calling Subscribe/Unsubscribe from a callback or hook would wait
// on itself: it fails with FailedPrecondition instead). Callbacks run on the
// home shard's thread, one at a time, and must not block (see hooks.h for
// how to hand work elsewhere); a callback may call Publish.
// Destroy inline clients before the Broker; after Close() they return
// Unavailable.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shardmq {

// A message given to an inline subscriber; views valid during the callback.
struct InlineMessage {
  std::string_view topic;
  std::string_view payload;
  uint8_t qos = 0;      // as delivered: min(published, subscribed)
  bool retain = false;  // set for retained messages sent because of a new subscription
  std::string_view publisher;
  std::string_view filter;  // the subscription that matched
  std::vector<std::pair<std::string_view, std::string_view>> user_properties;
};

using InlineCallback = std::function<void(const InlineMessage&)>;

class InlineClient {
 public:
  // Ends the session. From any thread but a shard thread it waits until the
  // home shard has ended it: once it returns, no callback of this client is
  // running or will run, so what they captured may go. (If the shard is
  // stuck, e.g. in a blocking hook, it gives up after 10 s and logs an
  // error.) On a shard thread (in a callback or hook) it cannot wait: the
  // session ends at that shard's next loop turn, and callbacks may run until
  // then.
  ~InlineClient();
  InlineClient(const InlineClient&) = delete;
  InlineClient& operator=(const InlineClient&) = delete;

  const std::string& client_id() const;
  int home_shard() const;

  // Queues a PUBLISH and returns: routing happens on the home shard in the
  // order of this thread's calls. InvalidArgument for a bad topic name or
  // QoS; Unavailable once the broker is closing. (A QoS 1/2 message is
  // handed over reliably: there is no wire to lose it on.)
  absl::Status Publish(std::string_view topic, std::string_view payload, uint8_t qos = 0,
                       bool retain = false,
                       std::vector<std::pair<std::string, std::string>> user_properties = {});

  // Subscribes and waits until the subscription is active on every shard
  // (as a network client's SUBACK does); retained messages are passed to
  // `callback` before this returns. Returns the granted QoS, or the refusal
  // (InvalidArgument for a bad filter). Subscribing again to the same filter
  // replaces the callback and options. DeadlineExceeded after 10 s if the
  // home shard is stuck (a blocking hook): the subscription may then still
  // take effect later; destroy the client, or Unsubscribe, to be sure.
  absl::StatusOr<uint8_t> Subscribe(std::string_view filter, uint8_t qos, InlineCallback callback);

  // Removes the subscription and waits; NotFound if there was none.
  absl::Status Unsubscribe(std::string_view filter);

  // Internal: made by Broker::NewInlineClient.
  struct State;
  explicit InlineClient(std::shared_ptr<State> state);

 private:
  std::shared_ptr<State> state_;
};

}  // namespace shardmq
