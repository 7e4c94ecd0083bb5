// shardmq/hooks.h: the events an embedding program can watch and the
// decisions it can take (accept, authenticate, ACL, rewrite, ...).
//
// Example: refuse everyone but "alice", and log every client that leaves.
//   class MyHooks : public shardmq::Hooks {
//    public:
//     shardmq::AuthDecision OnAuthenticate(const shardmq::ConnectRequest& r) override {
//       if (r.username == "alice") return shardmq::AuthDecision::Allow();
//       return shardmq::AuthDecision::Deny(0x86);  // bad user name or password
//     }
//     void OnClientDisconnected(const shardmq::ClientInfo& c,
//                               shardmq::DisconnectReason why) override {
//       std::fprintf(stderr, "%s left: %s\n", std::string(c.client_id).c_str(),
//                    shardmq::ToString(why));
//     }
//   };
//   options.hooks.push_back(std::make_shared<MyHooks>());  // or broker->AddHook()
//
// Several Hooks may be registered; they are called in registration order.
// For a decision (Allow / Deny / NoOpinion), the first hook that does not
// answer NoOpinion decides and later hooks are not asked; when every hook
// says NoOpinion (or none is registered) the request is allowed. That is the
// Mosquitto plugin chain ("defer"). Notifications go to every hook.
//
// MQTT 5 enhanced authentication (AUTH packets, re-authentication) is the
// separate EnhancedAuthenticator in shardmq/auth.h; OnAuthenticate still runs
// after a successful exchange (ConnectRequest::auth_method says which).
//
// What the client sees when a hook refuses:
//   accept            the socket is closed, nothing is sent
//   authenticate,     MQTT 5: CONNACK with the hook's reason code (0x86 bad
//   will ACL          user name or password, 0x87 not authorized, 0x8A
//                     banned, ...). 3.1/3.1.1: CONNACK return code 0x04 for
//                     0x86, 0x05 for every other refusal.
//   publish ACL,      MQTT 5: PUBACK (QoS 1) or PUBREC (QoS 2) with the
//   message arrived   reason code (default 0x87 not authorized); QoS 0 is
//   (kReject)         dropped silently. 3.1/3.1.1 cannot be told: the
//                     PUBLISH is acknowledged normally and dropped, as
//                     [MQTT-3.3.5-2] allows (the other choice, closing the
//                     connection, would make a misconfigured ACL look like
//                     a network fault and loop the client's reconnects).
//   subscribe ACL     SUBACK 0x87 for MQTT 5, 0x80 (failure) for 3.1.1.
//   unsubscribe       UNSUBACK 0x87 for MQTT 5 and the subscription stays;
//                     3.1.1 UNSUBACK has no codes, the subscription stays.
//   receive ACL       the message is not sent to that subscriber (dropped,
//                     OnMessageDropped says kNotAuthorized).
//
// Threads. Every hook except OnBrokerStarted / OnBrokerStopping runs on a
// shard thread: the shard that owns the connection or session concerned
// (OnAccept: the shard that accepted the socket; everything after CONNECT:
// the client id's home shard; OnDeliverCheck / OnMessageDelivered: the
// subscriber's home shard; OnMessageDropped: the subscriber's home shard, or
// the publisher's for kNoSubscribers, kRejectedByHook and
// kPublishNotAllowed). Several shards call the same Hooks object at the same
// time, so an implementation must be thread-safe (per-shard state indexed by
// ClientInfo::shard needs no lock). A hook runs inside the shard's event
// loop, between packets of every client on that shard: it must never block
// (no file or network I/O, no waiting on a lock another thread holds for
// long, no sleeping). Hand slow work to a thread of your own (a queue it
// reads) and answer from what you already know; an authentication that needs
// a slow back end is deferred (ConnectRequest::Defer) and answered from that
// thread; to publish or subscribe from it, use an InlineClient
// (shardmq/inline_client.h). Both are safe from any thread: they reach the
// shard through its external mailbox (a mutex-protected queue and an eventfd
// wake-up, src/shard/external_mailbox.h). The string_views in arguments are
// valid only during the call: copy what you keep.
//
// Cost. With no hook registered the broker tests one bit of a word it already
// holds (HookEvents) where it would call a hook, and makes no virtual call
// and no allocation. With hooks registered, each event costs one virtual call
// per hook that wants it; Events() lets a hook opt out of the per-message
// ones (OnDeliverCheck and OnMessageDelivered run once per subscriber).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shardmq {

// Who a hook is about. Views are valid only during the call.
struct ClientInfo {
  std::string_view client_id;
  // CONNECT's User Name, if any; with Options::Tls::identity_as_username, a
  // TLS client's certificate identity instead (see username_from_certificate).
  std::optional<std::string_view> username;
  std::string_view remote_address;  // "127.0.0.1:50312"; "inline" for an InlineClient
  // The protocol level of CONNECT: 3 (3.1), 4 (3.1.1) or 5; 0 for an InlineClient.
  int protocol_version = 0;
  // The identity of the client certificate a tls:// listener verified (its
  // subject CN or SAN, as shardmq/auth.h's AuthRequest has it); empty for
  // plain TCP, inline clients and TLS clients without a certificate.
  std::string_view certificate_identity;
  // True when `username` is certificate_identity put there by
  // Options::Tls::identity_as_username: the certificate, verified against the
  // CA, already authenticated this user name, and the client's own User Name
  // (if any) was discarded. A password check must not run for such a client
  // (it has no password for this name), and it is not anonymous.
  bool username_from_certificate = false;
  int shard = 0;  // the shard thread this call runs on
  bool inline_client = false;
};

// A yes/no answer of a hook, or "ask the next hook".
struct Decision {
  // kPending: OnAuthenticate only, see ConnectRequest::Defer().
  enum class Kind : uint8_t { kNoOpinion, kAllow, kDeny, kPending };
  Kind kind = Kind::kNoOpinion;
  // kDeny only: the MQTT 5 reason code sent to the client where the packet
  // has one (>= 0x80; e.g. 0x87 not authorized, 0x97 quota exceeded).
  uint8_t reason_code = 0x87;

  static Decision NoOpinion() { return {}; }
  static Decision Allow() { return {Kind::kAllow, 0}; }
  static Decision Deny(uint8_t reason_code = 0x87) { return {Kind::kDeny, reason_code}; }
  static Decision Pending() { return {Kind::kPending, 0}; }
};

// The answer to OnAuthenticate. Deny's reason code goes into CONNACK
// (see the file comment for 3.1.1).
using AuthDecision = Decision;

// The answer to an authentication that OnAuthenticate deferred
// (ConnectRequest::Defer). Move-only. Complete() may be called from any
// thread, once (later calls do nothing): Allow or NoOpinion lets the client
// in, Deny refuses it with the reason code. Destroying it without
// completing refuses the client (0x87 not authorized), so a lost request
// cannot leave a connection waiting for ever (the connect timeout would
// close it anyway).
class AuthCompletion {
 public:
  using Sink = std::function<void(AuthDecision)>;
  AuthCompletion() = default;
  explicit AuthCompletion(Sink sink) : sink_(std::move(sink)) {}
  AuthCompletion(AuthCompletion&&) = default;
  AuthCompletion& operator=(AuthCompletion&& other) {
    if (this != &other) {
      Complete(AuthDecision::Deny());
      sink_ = std::move(other.sink_);
      other.sink_ = nullptr;
    }
    return *this;
  }
  ~AuthCompletion() { Complete(AuthDecision::Deny()); }

  void Complete(AuthDecision decision) {
    if (!sink_) return;
    Sink sink = std::move(sink_);
    sink_ = nullptr;
    sink(decision);
  }
  explicit operator bool() const { return static_cast<bool>(sink_); }

 private:
  Sink sink_;
};

// Limits of one client that OnAuthenticate may tighten, for example from a
// per-user setting; they start as Options::limits has them. 0: no limit.
// When Broker::SetLimits changes the global rates later, a value the hook
// changed stays this client's ceiling (the tighter of the two applies) and
// one it left as it found it follows the new global value.
struct ClientLimits {
  uint32_t publish_rate = 0;        // PUBLISH packets per second
  uint64_t publish_bytes_rate = 0;  // topic + payload bytes per second
};

// CONNECT as OnAuthenticate sees it.
struct ConnectRequest {
  // client_id is the assigned one if the client sent none. When
  // client.username_from_certificate is set, client.username came from the
  // verified client certificate (Options::Tls::identity_as_username), not
  // from the client: it is authenticated already, and `password` is whatever
  // the client sent, to be ignored.
  ClientInfo client;
  // The Password field: bytes, not necessarily text.
  std::optional<std::string_view> password;
  // The MQTT 5 Authentication Method that an EnhancedAuthenticator already
  // accepted for this CONNECT; empty when there was none.
  std::string_view auth_method;
  bool clean_start = false;
  // This client's limits: a hook may change them during OnAuthenticate (not
  // later, even when it defers). Never null when the broker calls.
  ClientLimits* limits = nullptr;

  // Asynchronous authentication, for back ends too slow to ask on a shard
  // thread (LDAP, HTTP, a database): call Defer() inside OnAuthenticate,
  // hand the AuthCompletion to a thread of yours, and return
  // AuthDecision::Pending(). The connection waits (its further packets are
  // held, unread, and the connect timeout keeps running) until Complete();
  // then the broker carries on with CONNECT on the connection's shard. A
  // pending answer is final: later hooks are not asked.
  AuthCompletion Defer() const { return defer ? defer() : AuthCompletion(); }

  // Internal: set by the broker.
  std::function<AuthCompletion()> defer;
};

// A message as a hook sees it. Views valid only during the call.
struct MessageView {
  std::string_view topic;
  std::string_view payload;
  uint8_t qos = 0;
  bool retain = false;
  std::string_view publisher;  // client id; empty for a message the broker made
  // MQTT 5 User Properties, in order.
  std::vector<std::pair<std::string_view, std::string_view>> user_properties;
};

// OnMessageArrived's view of an incoming PUBLISH, with the means to rewrite
// it. Only what a hook sets is copied; the rest stays shared with the packet.
struct ArrivedMessage {
  MessageView message;
  // Rewrites (empty optional: unchanged). A rewritten topic must be a valid
  // topic name without wildcards; an invalid one rejects the message.
  std::optional<std::string> new_topic;
  std::optional<std::string> new_payload;
  std::optional<std::vector<std::pair<std::string, std::string>>> new_user_properties;
};

// What to do with an incoming message.
struct MessageVerdict {
  enum class Kind : uint8_t {
    kAccept,  // route it (rewritten if the hook set anything)
    kDrop,    // acknowledge it as if delivered, route nothing
    kReject,  // MQTT 5: PUBACK/PUBREC with reason_code; 3.1.1: ack and drop
  };
  Kind kind = Kind::kAccept;
  uint8_t reason_code = 0x87;

  static MessageVerdict Accept() { return {}; }
  static MessageVerdict Drop() { return {Kind::kDrop, 0}; }
  static MessageVerdict Reject(uint8_t reason_code = 0x87) { return {Kind::kReject, reason_code}; }
};

// A SUBSCRIBE entry as OnSubscribe sees it.
struct SubscribeRequest {
  std::string_view filter;  // as written, "$share/{group}/{filter}" included
  // The QoS the client asked for, already capped at the broker's Maximum
  // QoS. A hook may lower it (not raise it); SUBACK grants the result.
  uint8_t qos = 0;
  // Filters the session holds now (not counting this one if it is new).
  size_t subscription_count = 0;
  bool shared = false;  // a "$share/..." filter
};

// Why a message did not reach a subscriber (or anybody).
enum class DropReason : uint8_t {
  kNoSubscribers,     // nobody matched (client_id is empty)
  kQueueFull,         // the session's queue is at --max-queued-messages/bytes
  kSlowSubscriber,    // QoS 0 to a connection with too much unsent output
  kExpired,           // Message Expiry Interval ran out before sending
  kTooLarge,          // above the subscriber's Maximum Packet Size
  kNotAuthorized,     // OnDeliverCheck (receive ACL) refused it
  kRejectedByHook,    // OnMessageArrived said kDrop or kReject (client_id: publisher)
  kPublishNotAllowed  // OnPublishCheck refused it (client_id: publisher)
};
const char* ToString(DropReason reason);

// Why a network connection ended.
enum class DisconnectReason : uint8_t {
  kClientDisconnect,          // DISCONNECT from the client
  kClientDisconnectWithWill,  // MQTT 5 DISCONNECT 0x04
  kConnectionLost,            // the socket closed without DISCONNECT
  kKeepAliveTimeout,
  kProtocolError,  // the broker closed it for breaking a rule
  kTakenOver,      // another connection with the same client id
  kServerShutdown,
  kNotAuthorized,   // failed re-authentication
  kRateLimited,     // over its publish rate for too long (Options::limits)
  kAdministrative,  // Broker::DisconnectClient (e.g. the admin HTTP API)
};
const char* ToString(DisconnectReason reason);

// Why a session ended.
enum class SessionEndReason : uint8_t {
  kClosed,        // its connection ended and it was not persistent
  kCleanStart,    // a new connection asked for a clean start
  kExpired,       // its Session Expiry Interval ran out while offline
  kInlineClosed,  // an InlineClient was destroyed
};
const char* ToString(SessionEndReason reason);

// Bits of Hooks::Events(): which calls a hook wants. A hook that leaves a
// bit out is not called for those events (so per-message events cost
// nothing for a hook that only authenticates).
enum HookEvents : uint32_t {
  kHookConnection = 1u << 0,  // accept, authenticate, session and disconnect events
  kHookPublish = 1u << 1,     // OnPublishCheck, OnMessageArrived
  kHookSubscribe = 1u << 2,   // OnSubscribe(d), OnUnsubscribe(d)
  kHookDeliver = 1u << 3,     // OnDeliverCheck, OnMessageDelivered
  kHookDropped = 1u << 4,     // OnMessageDropped
  kHookWill = 1u << 5,        // OnWillSent
  kHookBroker = 1u << 6,      // OnBrokerStarted, OnBrokerStopping
  kHookAll = 0x7F,
};

class Hooks {
 public:
  virtual ~Hooks() = default;

  // Read once when the broker starts.
  virtual uint32_t Events() const { return kHookAll; }

  // ---- Connections (kHookConnection) ---------------------------------------
  // A TCP connection was accepted, before any byte is read. Deny closes it.
  virtual Decision OnAccept(std::string_view remote_address, int shard) {
    (void)remote_address;
    (void)shard;
    return Decision::NoOpinion();
  }
  // CONNECT, on the client id's home shard, after the broker's own checks
  // (client id, will QoS and retain, TLS certificate) and before any session
  // is touched. Deny answers CONNACK with the reason code (see the file
  // comment); Pending defers the answer (ConnectRequest::Defer). Allow or
  // NoOpinion does not yet admit the client: a later hook, or the publish
  // ACL on its will, may still refuse it; OnSessionEstablished or
  // OnSessionResumed on the same shard says it got in.
  virtual AuthDecision OnAuthenticate(const ConnectRequest& request) {
    (void)request;
    return AuthDecision::NoOpinion();
  }
  // CONNACK was sent: a new session (resumed = false) or one carried over
  // from an earlier connection (resumed = true; Session Present = 1).
  virtual void OnSessionEstablished(const ClientInfo& client) { (void)client; }
  virtual void OnSessionResumed(const ClientInfo& client) { (void)client; }
  // A session ended (subscriptions and queued messages are gone). For an
  // expired session `client` has only client_id and shard.
  virtual void OnSessionTerminated(const ClientInfo& client, SessionEndReason why) {
    (void)client;
    (void)why;
  }
  // A connected client's network connection ended (after CONNACK only).
  virtual void OnClientDisconnected(const ClientInfo& client, DisconnectReason why) {
    (void)client;
    (void)why;
  }

  // ---- Publishing (kHookPublish) -------------------------------------------
  // The publish ACL: may this client publish to `topic`? Also asked for a
  // CONNECT's will, before any session is touched: Deny then refuses the
  // CONNECT (MQTT 5 CONNACK with the code, 3.1.1 0x05), since a will is
  // published when the client can no longer be told. Not asked for an
  // InlineClient (the embedding program is trusted).
  virtual Decision OnPublishCheck(const ClientInfo& client, std::string_view topic, uint8_t qos,
                                  bool retain) {
    (void)client;
    (void)topic;
    (void)qos;
    (void)retain;
    return Decision::NoOpinion();
  }
  // An application message arrived (after OnPublishCheck allowed it), from
  // a client or an InlineClient; the hook may rewrite, drop or reject it.
  // Hooks are called in order, each seeing the previous one's rewrites, until
  // one drops or rejects.
  virtual MessageVerdict OnMessageArrived(const ClientInfo& publisher, ArrivedMessage& message) {
    (void)publisher;
    (void)message;
    return MessageVerdict::Accept();
  }

  // ---- Subscriptions (kHookSubscribe) --------------------------------------
  // The subscribe ACL, one call per filter of a SUBSCRIBE: Deny refuses that
  // filter (SUBACK 0x87 / 0x80); lowering request.qos downgrades the grant.
  virtual Decision OnSubscribe(const ClientInfo& client, SubscribeRequest& request) {
    (void)client;
    (void)request;
    return Decision::NoOpinion();
  }
  // The filter is in the session's subscriptions with `granted_qos`.
  virtual void OnSubscribed(const ClientInfo& client, std::string_view filter,
                            uint8_t granted_qos) {
    (void)client;
    (void)filter;
    (void)granted_qos;
  }
  // Before an UNSUBSCRIBE entry takes effect; Deny keeps the subscription.
  virtual Decision OnUnsubscribe(const ClientInfo& client, std::string_view filter) {
    (void)client;
    (void)filter;
    return Decision::NoOpinion();
  }
  // After: `existed` says whether there was such a subscription.
  virtual void OnUnsubscribed(const ClientInfo& client, std::string_view filter, bool existed) {
    (void)client;
    (void)filter;
    (void)existed;
  }

  // ---- Delivery (kHookDeliver, kHookDropped) --------------------------------
  // The receive ACL, once per message and subscriber before it is sent or
  // queued (Mosquitto's read check at delivery). Deny drops it for this
  // subscriber only.
  virtual Decision OnDeliverCheck(const ClientInfo& subscriber, const MessageView& message) {
    (void)subscriber;
    (void)message;
    return Decision::NoOpinion();
  }
  // A PUBLISH was queued on the subscriber's socket (first send, not
  // resends), or an InlineClient's callback returned. `qos` as sent.
  virtual void OnMessageDelivered(const ClientInfo& subscriber, const MessageView& message,
                                  uint8_t qos) {
    (void)subscriber;
    (void)message;
    (void)qos;
  }
  // A message was not delivered to `client_id` (see DropReason).
  virtual void OnMessageDropped(std::string_view client_id, const MessageView& message,
                                DropReason why) {
    (void)client_id;
    (void)message;
    (void)why;
  }

  // ---- Wills (kHookWill) ----------------------------------------------------
  // A will message is about to be routed, on its client's home shard.
  virtual void OnWillSent(std::string_view client_id, const MessageView& will) {
    (void)client_id;
    (void)will;
  }

  // ---- Broker (kHookBroker), on the controlling thread -----------------------
  // Start() succeeded: listeners accept. Called on the thread that called
  // Start(), before it returns.
  virtual void OnBrokerStarted() {}
  // The first Close() (or the destructor) began a graceful stop; called on
  // that thread before the shards are told.
  virtual void OnBrokerStopping() {}
};

}  // namespace shardmq
