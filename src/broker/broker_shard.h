// BrokerShard: MQTT semantics on one shard. It implements the runtime's
// ShardHandler, owns the shard's sessions, its part of the subscription index,
// its copy of the interest map and of the retained messages, and speaks to
// other shards only through mail (broker/mail.h).
//
// Lifecycle and thread: one per shard, created by the ShardGroup's factory on
// the shard's own thread and destroyed there; every method runs on that
// thread. Packet handling is split by packet type over handle_*.cc files, in
// the manner of one handler per packet and one dispatch switch.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/functional/any_invocable.h"
#include "broker/broker_context.h"
#include "broker/connection.h"
#include "broker/inline_sink.h"
#include "broker/mail.h"
#include "broker/message.h"
#include "broker/publish_batch.h"
#include "broker/session.h"
#include "broker/shard_file_io.h"
#include "cluster/redis_link.h"
#include "mqtt/decoder.h"
#include "mqtt/packet.h"
#include "shard/reactor.h"
#include "shardmq/broker_view.h"
#include "store/log_writer.h"
#include "topic/interest_map.h"
#include "topic/retained_index.h"
#include "topic/subscription_index.h"

namespace shardmq::broker {

class BrokerShard final : public shard::ShardHandler {
 public:
  BrokerShard(shard::Shard& shard, BrokerContext& context);
  ~BrokerShard() override;

  // shard::ShardHandler
  void OnOpen(shard::ConnId id, const shard::PeerInfo& peer,
              absl::Span<const uint8_t> initial_bytes) override;
  void OnData(shard::ConnId id, absl::Span<const uint8_t> bytes) override;
  void OnClosed(shard::ConnId id, shard::CloseReason reason, void* user_data) override;
  void OnMail(int from_shard, const shard::MailItem& item) override;
  void OnShutdown() override;
  // Flushes the shard's log (retained_store.cc).
  void OnLoopTurnEnd() override;
  // Posts the turn's publish batches (delivery.cc).
  void OnMailFlush() override;

  // InlineClient operations (inline_session.cc), run on the client id's home
  // shard through the external mailbox. `done` gets the outcome: a status,
  // or for Subscribe the granted QoS / refusal code.
  using InlineDone = absl::AnyInvocable<void(absl::StatusOr<uint8_t>)>;
  void InlineOpen(const std::string& client_id, std::shared_ptr<InlineSink> sink, InlineDone done);
  void InlineClose(const std::string& client_id, InlineDone done);
  void InlinePublish(const std::string& client_id, const InlinePublishRequest& request);
  void InlineSubscribe(const std::string& client_id, const std::string& filter, uint8_t qos,
                       InlineCallback callback, InlineDone done);
  void InlineUnsubscribe(const std::string& client_id, const std::string& filter, InlineDone done);

  // Inspection for shardmq::Broker (inspect.cc, shardmq/broker_view.h):
  // copies of what this shard owns, made on its thread when a non-shard
  // thread asks through the external mailbox (broker/shard_query.h).
  ShardGauges Gauges() const;
  // Every session homed here, or only `only_id`'s when it is not empty.
  std::vector<ClientView> Clients(std::string_view only_id) const;
  std::vector<RetainedView> Retained(std::string_view filter);
  // Broker::DisconnectClient on the client's home shard.
  absl::Status AdminDisconnect(std::string_view client_id, bool discard_session);

  // Clustering (cluster_bridge.cc). A message from another node, as the
  // link consumed it from the node's queue (`shared_group` empty): routed
  // here as if published locally (matched against this node's non-shared
  // subscriptions, retained on this node), never sent back out. Or a message
  // from the shared queue of `shared_group` ("$share/{group}/{filter}"; from
  // any node, this one too): given to one of the group's members on this
  // node, and to nobody else.
  void RouteFromCluster(std::string_view body, std::string_view shared_group);
  // Clustering with Redis (cluster_sessions.cc), on the client id's home
  // shard: a claim made by HoldForClaim came back; another node claimed a
  // session owned here (let it go, then answer); a dead node's session is
  // this node's now (kept parked until its client returns).
  void FinishClaim(cluster::ClaimResult result);
  void ReleaseForTakeover(const std::string& client_id, const std::string& by_node, uint64_t token);
  void AdoptSession(const std::string& client_id, cluster::SessionState state);

  // Broker::SetLimits on every shard: `limits` (already checked) replace
  // this shard's copy. Connected clients keep what their CONNACK told them
  // (Connection::advertised, their decoder's Maximum Packet Size) and meet
  // every other new bound at once (limits_update.cc).
  void ApplyLimits(const Limits& limits);

 private:
  // A SUBSCRIBE whose SUBACK waits for other shards to learn about new filters.
  struct PendingSuback {
    shard::ConnId conn;
    Session* session = nullptr;
    uint16_t packet_id = 0;
    std::vector<mqtt::ReasonCode> codes;
    // Filters whose retained messages follow the SUBACK (Retain Handling
    // allowing), with the options granted.
    std::vector<std::pair<std::string, topic::SubscriptionOptions>> retained_for;
    int acks_missing = 0;
    // An InlineClient's SUBSCRIBE: told the outcome instead of a SUBACK.
    InlineDone inline_done;
    std::string inline_client_id;
  };

  // What hooks and inline clients need to know about a session beyond
  // Session itself (kept out of it: Session fills its 256-byte size class).
  // Present only while hooks are registered or the session is an inline
  // client's, so a broker without either pays nothing.
  struct SessionExtra {
    std::optional<std::string> username;
    std::string peer;
    int protocol_version = 0;
    std::string certificate_identity;        // from a tls:// listener's client certificate
    bool username_from_certificate = false;  // Options::Tls::identity_as_username
    std::shared_ptr<InlineSink> inline_sink;
  };
  // For hooks: who `session` is. Valid while `session` and its extra live.
  ClientInfo InfoFor(const Session& session) const;
  bool HooksWant(uint32_t events) const { return context_.hooks.wants(events); }
  static MessageView ViewOf(const Message& message);
  static MessageView ViewOf(const Message::Fields& fields);
  // Hooks::OnMessageDropped, if wanted.
  void NoteDropped(std::string_view client_id, const Message& message, DropReason why);
  // OnMessageArrived over `fields`, rewriting them into `arrived`/`properties`
  // (which must outlive the routing).
  MessageVerdict RunArrivedHooks(const ClientInfo& publisher, Message::Fields& fields,
                                 std::optional<ArrivedMessage>& arrived,
                                 std::optional<mqtt::Properties>& properties);
  // Gives a message to an inline client's callbacks.
  void DeliverInline(Session& session, InlineSink& sink, const MessageRef& message, uint8_t qos,
                     bool retain, const std::string* shared_group);

  // The connection for an open id; nullptr once Close/Abort/HandOff was called.
  Connection* Find(shard::ConnId id);

  // Input.
  void HandleBeforeConnect(Connection& conn, absl::Span<const uint8_t> bytes);
  bool HandlePacket(Connection& conn, const mqtt::Packet& packet);
  // `connect_bytes`: the packet, kept if an authentication hook defers.
  // `auth_decided`: the hooks already answered (a deferred answer came).
  // `decided_limits`: with auth_decided, the limits the hooks set.
  // `claim`: with --cluster-redis, the claim of the client id came back
  // (FinishClaim).
  void HandleConnect(Connection& conn, const mqtt::Connect& connect,
                     absl::Span<const uint8_t> connect_bytes, bool auth_decided = false,
                     const ClientLimits* decided_limits = nullptr,
                     cluster::ClaimResult* claim = nullptr);
  // A deferred authentication's answer, on the connection's shard.
  void FinishDeferredAuth(shard::ConnId id, AuthDecision decision);
  // A held CONNECT goes on (after a deferred authentication's answer, or a
  // claim of its client id): decoded again and handled as decided, then
  // what arrived after it. Returns the CONNECT's Clean Start.
  bool ContinueHeldConnect(Connection& conn, Connection::HeldConnect& held,
                           cluster::ClaimResult* claim);
  // Hooks' refusal code as the client's version can say it.
  static mqtt::ReasonCode AuthRefusal(const AuthDecision& decision, bool v5);
  void HandlePublish(Connection& conn, const mqtt::Publish& publish);
  // HandlePublish's continuations: the publish ACL and OnMessageArrived
  // hooks, when installed; then the routing and the acknowledgement.
  void PublishThroughHooks(Connection& conn, const mqtt::Publish& publish, Message::Fields& fields);
  void AcceptPublish(Connection& conn, const mqtt::Publish& publish, Message::Fields& fields);
  // The topic a PUBLISH is for, after its Topic Alias (MQTT 5); nullopt when
  // the alias is invalid and the connection is being closed.
  std::optional<std::string_view> ResolveTopicAlias(Connection& conn, const mqtt::Publish& publish);
  void HandlePubAck(Connection& conn, const mqtt::PubAck& ack);
  // A PUBLISH a hook refused or dropped: the acknowledgement the client's
  // version allows (shardmq/hooks.h), nothing routed.
  void AnswerUnrouted(Connection& conn, const mqtt::Publish& publish,
                      const MessageVerdict& verdict);
  void HandleSubscribe(Connection& conn, const mqtt::Subscribe& subscribe);
  void HandleUnsubscribe(Connection& conn, const mqtt::Unsubscribe& unsubscribe);
  void HandleDisconnect(Connection& conn, const mqtt::Disconnect& disconnect);
  // Answers every CONNECT when the broker is configured to send clients
  // elsewhere (Options::redirect); true if it did.
  bool RedirectConnect(Connection& conn, const mqtt::Connect& connect);
  // Options::Tls::identity_as_username: whether this connection's user name
  // is its certificate identity (a TLS connection).
  bool IdentityIsUsername(const Connection& conn) const {
    return context_.tls_identity_as_username && shard_.IsTls(conn.id);
  }
  // Refuses (0x87 / 0x05) a CONNECT whose user name must come from a client
  // certificate the client did not present; true if it did.
  bool RefuseWithoutCertificate(Connection& conn, const mqtt::Connect& connect);
  // The checks of a CONNECT's will that need no hook (QoS, retain); false
  // when it refused the CONNECT.
  bool WillSupported(Connection& conn, const mqtt::Connect& connect);

  // MQTT 5 enhanced authentication (handle_auth.cc). BeginConnectAuth runs
  // the first step for a CONNECT that names an Authentication Method.
  enum class AuthProgress { kProceed, kWait, kClosed };
  AuthProgress BeginConnectAuth(Connection& conn, const mqtt::Connect& connect,
                                absl::Span<const uint8_t> connect_bytes);
  // AUTH before CONNACK (continuing the CONNECT exchange) or after it
  // (re-authentication); false once the connection is closing.
  void HandleAuth(Connection& conn, const mqtt::Auth& auth);
  bool HandlePacketWhileAuthenticating(Connection& conn, const mqtt::Packet& packet);
  void SendAuth(Connection& conn, mqtt::ReasonCode reason, std::string_view data);
  // Authentication Method (and Data of the last step) for the CONNACK that
  // ends a successful CONNECT-time exchange; views into conn.auth.
  void AddAuthToConnack(const Connection& conn, mqtt::Properties* properties);

  // Closing. ProtocolClose answers with CONNACK/DISCONNECT as the version
  // allows and then closes; the will is published for every close that is not
  // a client's DISCONNECT. DisconnectAndClose is the same without counting a
  // protocol error (e.g. a failed re-authentication).
  void ProtocolClose(Connection& conn, mqtt::ReasonCode reason, const char* what);
  void DisconnectAndClose(Connection& conn, mqtt::ReasonCode reason, std::string_view what);
  // `properties`: CONNACK properties for MQTT 5 (reason string, server reference).
  void ConnackAndClose(Connection& conn, mqtt::ProtocolVersion version, mqtt::ReasonCode reason,
                       const mqtt::Properties& properties = {});
  void DetachSession(Connection& conn, bool publish_will);
  void EndSession(Session& session, SessionEndReason why = SessionEndReason::kClosed);
  void PublishWill(WillMessage& will);
  void ArmKeepAlive(shard::ConnId id, shard::Clock::duration delay);

  // Session expiry and will delay (lifecycle.cc). A session that goes offline
  // starts its expiry timer and, for an MQTT 5 will with a delay, its will
  // timer; resuming the session cancels both and drops the delayed will.
  // `expiry_seconds`: how long the session lives on (its full interval, or
  // what is left of it after a restart).
  void SessionWentOffline(Session& session, int64_t offline_since_wall_ns);
  void SessionWentOffline(Session& session, int64_t offline_since_wall_ns, uint32_t expiry_seconds);
  void SessionResumed(Session& session);
  void DelayWill(Session& session, std::unique_ptr<WillMessage> will, uint32_t delay_seconds,
                 int64_t due_wall_ns);
  // Forgets the session's offline state (timers cancelled) and returns a
  // will still waiting out its delay, if any.
  std::unique_ptr<WillMessage> ForgetOffline(Session& session);

  // Routing and delivery (DESIGN.md, "How a PUBLISH travels", steps 4-5).
  // Builds the Message only if someone, on any shard, will receive it, and
  // returns whether anyone matched (MQTT 5 PUBACK 0x10 otherwise). With
  // `shared` false, shared groups are left out: in a cluster their copies
  // come only from their shared queues (ExportToCluster).
  bool Route(const Message::Fields& fields, bool shared = true);
  // Posts `message` (one reference, which the mail item carries) to `target`
  // with `arg` (mail.h: a kMailPublish carries the topic's route cache hash,
  // so the receiver need not hash it again).
  void PostMessage(int target, MailKind kind, MessageRef message, uint64_t arg = 0);
  // Every mail to another shard goes through here: the publishes batched
  // for `target` go first, so the receiver sees everything in the order it
  // happened (a durability barrier after the messages it covers, a retained
  // message after the ones published before it).
  void PostMail(int target, const shard::MailItem& item);
  // Copies a message only other shards want into `target`'s publish batch
  // (publish_batch.h), posting the batch when it is full.
  void BatchPublish(int target, const Message::Fields& fields, uint64_t route_hash);
  void PostPublishBatch(int target);
  // kMailPublishBatch: each message to this shard's matching subscribers.
  void DeliverBatch(const PublishBatch& batch);
  // Fills match_scratch_ with the local subscriptions matching `topic`
  // (sorted by session) and, if `want_shards`, interest_scratch_ with the
  // other shards that have a subscriber (self excluded). Served from
  // route_cache_ when it can be. `hash`: the topic's route cache hash when
  // the caller has it (a kMailPublish carries the sender's), else 0.
  void CollectMatches(std::string_view topic, bool want_shards, size_t hash = 0);
  void CollectLocalMatches(std::string_view topic);
  // Every change to index_ or interest_ must call this: cached routes die.
  void InvalidateRoutes() { ++route_generation_; }
  // One copy per matching session, merged over its subscriptions.
  void DeliverToMatches(const MessageRef& message);
  // One copy to one session: `retain` is the RETAIN flag to send, `ids` the
  // Subscription Identifiers of the subscriptions that matched.
  // (`ids` by reference: passed by value it was the seventh and eighth
  // argument, spilled to the stack and reloaded with a 16-byte load, a
  // store-forwarding stall on every delivery.)
  void Deliver(Session& session, const MessageRef& message, uint8_t qos, bool retain,
               const absl::Span<const uint32_t>& ids, const std::string* shared_group = nullptr);
  // Encodes and queues a PUBLISH for `conn`. Returns false, sending nothing,
  // when the packet would exceed the client's Maximum Packet Size: the
  // message is then dropped for this client only [MQTT-3.1.2-25].
  bool SendPublish(Connection& conn, const Message& message, uint8_t qos, uint16_t packet_id,
                   bool dup, bool retain, const absl::Span<const uint32_t>& ids);
  // SendPublish's parts: the mqtt::Publish of a message for `version`
  // (properties kept, expiry counted down); the header of a PUBLISH that
  // carries no properties written in place (nullopt: the connection's bytes
  // are transformed, TLS or WebSocket, so SendPublish encodes it itself);
  // the statistics and hook of a PUBLISH that went out.
  mqtt::Publish PublishFor(const Message& message, mqtt::ProtocolVersion version);
  std::optional<bool> SendPlainPublish(Connection& conn, const Message& message, uint8_t qos,
                                       uint16_t packet_id, bool dup, bool retain);
  void NoteSent(Connection& conn, const Message& message, uint8_t qos, bool dup);
  void PumpQueue(Session& session);
  void ResendInflight(Session& session);
  bool Enqueue(Session& session, const MessageRef& message, uint8_t qos, bool retain,
               absl::Span<const uint32_t> ids, const std::string* shared_group = nullptr);
  // QoS 1/2 messages a session may have unacknowledged: our bound, lowered
  // by the client's Receive Maximum.
  size_t InflightWindow(const Session& session) const;

  // Shared subscriptions (shared_delivery.cc): each message to one member of
  // each matching group, over all shards, weighted by members per shard.
  // Fills shared_scratch_ with the groups matching `topic`.
  void CollectSharedGroups(std::string_view topic);
  // Gives `message` to one member of `group` ("$share/{g}/{filter}"), here or
  // on another shard, never to `exclude`. False if the group has no member
  // (other than `exclude`) anywhere.
  bool DeliverShared(const MessageRef& message, const std::string& group, int hops,
                     const Session* exclude);
  // A local member of `group` other than `exclude`, connected ones first.
  bool DeliverToLocalMember(const MessageRef& message, const std::string& group,
                            const Session* exclude);
  // The member count of `group` on this shard changed: tell the others.
  void AnnounceSharedCount(const std::string& group);
  void SetSharedCount(const std::string& group, int shard, uint32_t members);
  // Messages a session got through shared subscriptions and has not
  // acknowledged go to other members (the session is leaving).
  void RedeliverShared(Session& session);

  // Back-pressure (DESIGN.md, "Bounded everything"): a QoS 1/2 delivery that
  // leaves an online session's queue over its high watermark pauses reading
  // from the message's publisher, wherever it lives; the session releases all
  // its pauses when its queue drains below the low watermark or it goes
  // offline. Pauses of one publisher by several sessions add up.
  bool OverHighWatermark(const Session& session) const;
  bool UnderLowWatermark(const Session& session) const;
  void ApplyBackpressure(Session& session, std::string_view publisher);
  void ReleaseBackpressure(Session& session);
  // On the publisher's home shard: add `delta` to its pause count and pause
  // or resume its connection's reading accordingly.
  void ChangePublisherPause(const std::string& publisher, int delta);
  void ApplyPauseState(Connection& conn);
  // Publish rate limits (publish_throttle.h): counts a PUBLISH and, past the
  // client's burst, holds its reading until it is within its rate again.
  // False when the publisher was disconnected for it (its session may be
  // gone): the caller must not touch either again.
  [[nodiscard]] bool ThrottlePublisher(Connection& conn, uint64_t size);
  void ScheduleThrottleEnd(Connection& conn, int64_t wait_ns);
  // Keeps input of a throttled connection until the throttle ends.
  void HoldThrottled(Connection& conn, absl::Span<const uint8_t> bytes);
  void EndThrottle(shard::ConnId id);

  // Subscriptions and interest.
  void AddSubscription(Session& session, const std::string& filter,
                       const topic::SubscriptionOptions& options, PendingSuback* pending,
                       uint64_t token);
  void RemoveSubscription(Session& session, const std::string& filter);
  // Clustering (cluster_bridge.cc), called only when context_.cluster is
  // set: a message a local client (or will, or inline client) published
  // goes to the other nodes (true; false for what stays on this node:
  // then its shared groups are served locally); a filter became active /
  // inactive on this shard.
  bool ExportToCluster(const Message::Fields& fields);
  // Back-pressure towards RabbitMQ: ExportToCluster found the link's buffer
  // over half full (cluster_congested_); the publisher's reading pauses
  // until it is under a quarter (checked every few milliseconds), instead
  // of the buffer overflowing and dropping acknowledged messages.
  void PauseForCluster(Connection& conn);
  void ArmClusterPauseCheck();
  // `pending`/`token`: a SUBACK that waits for the binding (token 0: none).
  void ClusterInterest(const std::string& filter, bool added, PendingSuback* pending = nullptr,
                       uint64_t token = 0);
  // A message as other nodes and Redis carry it (cluster_bridge.h), and
  // back: null when it expired meanwhile or does not decode (logged).
  void AppendClusterBody(const Message& message, std::string& out);
  MessageRef MessageFromClusterBody(std::string_view body);
  // With --cluster-redis (cluster_sessions.cc, called only when
  // context_.redis is set). HoldForClaim: holds a CONNECT while its client
  // id is claimed in Redis; false when it goes on at once (Redis away).
  bool HoldForClaim(Connection& conn, std::string_view client_id,
                    absl::Span<const uint8_t> connect_bytes, const ClientLimits& limits);
  // HandleConnect's part of a claim: the session Redis held, resumed here.
  void ApplyClaim(const std::string& client_id, cluster::ClaimResult& claim);
  void KeepClaimedState(cluster::ClaimResult& claim);
  // A persistent session from its fields in Redis (null when there is
  // none), subscribed here; `offline_since`: when its connection ended, 0
  // when Redis does not say.
  Session* InstallClusterSession(const std::string& client_id, const cluster::SessionState& state,
                                 int64_t* offline_since = nullptr);
  void EnqueueFromCluster(Session& session, std::string_view entry);
  // A parked session's copy goes to its queue in Redis.
  void PushParked(Session& session, const Message& message, uint8_t qos, bool retain,
                  absl::Span<const uint32_t> ids);
  void ParkSession(Session& session, int64_t offline_since_wall_ns);
  void MoveMessagesToCluster(Session& session);
  void WriteSessionSettings(Session& session);
  void ClusterSessionConnected(Session& session, bool session_present, bool had_remote_state);
  // `options` null: unsubscribed.
  void ClusterSubscriptionChanged(Session& session, const std::string& filter,
                                  const topic::SubscriptionOptions* options);
  void ClusterSessionEnded(Session& session, SessionEndReason why);
  // The hand-off grace after a takeover (cluster_sessions.cc): the new
  // owner reads the queue in Redis once more; the old one stops forwarding.
  void ScheduleDrain(const std::string& client_id, bool discard);
  void FinishDrain(cluster::ClaimResult& drained);
  void EndForwarding(const std::string& client_id, uint64_t generation);
  void DropReleasedSession(Session& session);
  // RouteFromCluster's shared-queue case: one local member of `group`.
  void DeliverFromSharedQueue(const Message::Fields& fields, const std::string& group);
  void FinishSuback(PendingSuback& pending);
  // One of the things a pending SUBACK waits for arrived (an interest
  // acknowledgement, the log's durability); the last one sends it.
  void SubackPartDone(uint64_t token);
  void SendRetained(Session& session, std::string_view filter,
                    const topic::SubscriptionOptions& options);
  // Retained QoS 1/2 messages for a connected session that the session's
  // queue could not take yet (a filter matching thousands of them): kept in
  // retained_backlog_ and fed in as the queue drains (PumpQueue), so none is
  // dropped at the queue's bound and the queue stays within it.
  void FeedRetainedBacklog(Session& session);
  // The session goes offline (persistent: the backlog joins its queue,
  // within the offline bounds) or ends (dropped).
  void SettleRetainedBacklog(Session& session, bool keep);
  void BroadcastInterest(MailKind kind, const std::string& filter, uint64_t token);

  // Durable retained messages (retained_store.cc, README "Durable state").
  // On the topic's owner shard, appends the change `message` makes (set, or
  // clear for an empty payload) to this shard's log.
  void LogRetainedIfOwner(const Message& message);
  void AppendRetainedSet(const Message& message, int64_t wall_now);
  // Compaction: a snapshot of everything this shard's log must hold, when
  // the log has grown past Options::Durability::compaction_bytes.
  void WriteSnapshot();

  // Durable sessions (session_store.cc). A session is logged while it is
  // persistent and the broker has a log (Session::logged); these append its
  // changes, and do nothing for a session that is not logged.
  void AppendScratch(uint8_t type);
  // The user name hooks know `session` by (SessionExtra), if any.
  std::optional<std::string> UsernameOf(const Session& session) const;
  // At CONNECT: starts logging a session that became persistent (all of
  // it), logs a logged one's new expiry, or ends one that stopped being
  // persistent.
  void LogSessionAtConnect(Session& session, mqtt::ProtocolVersion version);
  // PUT, subscriptions, messages and inbound QoS 2 ids: the whole session,
  // for a session that starts being logged and for snapshots.
  void LogWholeSession(Session& session, uint8_t protocol_version);
  void LogSessionOffline(Session& session);
  void LogSessionEnd(Session& session);
  void LogSubscribe(Session& session, const std::string& filter,
                    const topic::SubscriptionOptions& options);
  void LogUnsubscribe(Session& session, const std::string& filter);
  // Logs a QoS 1/2 copy of `message` for `session` (and the message, once
  // per shard) and returns its item number; 0 when the session is not logged.
  // --max-memory (spill_store.cc, spill.h).
  struct SpillFile;
  void StartSpilling();
  bool ShouldSpill(const Session& session, const QueuedMessage& queued) const;
  std::shared_ptr<SpilledBody> SpillLoggedMessage();
  std::shared_ptr<SpilledBody> SpillRecovered(const SpillLocation& where);
  // Adds or removes a queued message's charge (queued_memory_).
  void ChargeQueued(const QueuedMessage& queued, bool add);
  // A session's queue is going away with it.
  void ForgetQueue(Session& session);
  // Starts reading the spilled messages at the front of the queue back; the
  // queue moves on as they arrive (OnSpillRead).
  void LoadSpilled(Session& session);
  // `token`: the entry's SpilledBody (copies of one message in one queue
  // are alike, so the first one loading takes it). `bytes`: what was read,
  // or why nothing was (result < 0).
  void OnSpillRead(const std::string& client_id, const Session* key, const SpilledBody* token,
                   const std::string& bytes, const SpillLocation& where, int result);
  std::shared_ptr<SpillFile> OpenSpillFile(uint64_t segment, std::string* error);
  // QUEUED for a copy kept only in the log, after a MESSAGE AT naming where.
  uint64_t LogSpilledQueued(Session& session, const QueuedMessage& queued);
  uint64_t LogQueued(Session& session, const MessageRef& message, uint8_t qos, bool retain,
                     const std::string* shared_group, absl::Span<const uint32_t> ids);
  void LogItem(uint8_t type, uint64_t item, uint16_t packet_id = 0);
  void LogInboundQos2(Session& session, uint16_t packet_id, bool added, uint64_t commit = 0);
  void LogWill(Session& session, const WillMessage& will, int64_t due_wall_ns);
  void LogWillDone(Session& session);
  // An in-flight QoS 2 message held until its records are stored
  // (InflightMessage::awaiting_store) goes out when they are.
  void SendWhenStored(Session& session, uint16_t packet_id, uint64_t item, uint64_t origin);
  // Sends a held copy now (it is stored, or committed).
  void ReleaseHeld(const std::string& client_id, const Session* key, uint16_t packet_id,
                   uint64_t item, bool stored);
  // At construction: the sessions recovered for this shard, and every other
  // shard's recovered filters in the interest map, before anything is served.
  void RestoreSessions();

  // --durability=sync: `ack` (PUBACK, PUBREC, PUBCOMP) goes to `conn` once
  // every shard the last routed message reached (durable_targets_) has its
  // records on disk; if a log failed, MQTT 5 clients get 0x80 and 3.x
  // clients are disconnected.
  bool AcksWaitForLog() const { return log_ != nullptr && context_.durability_sync; }
  // `sequence_before`: the log's next_sequence() before the PUBLISH was
  // handled, to tell whether it appended anything here; `wait_here`: wait
  // for this shard's log all the same.
  void AckWhenDurable(Connection& conn, const mqtt::PubAck& ack, uint64_t sequence_before,
                      bool wait_here = false);
  // A QoS 2 PUBLISH from a logged session under `sync`: once every copy is
  // on disk, the publisher's INBOUND QOS2 record (with `origin`) is
  // appended, and once that is on disk, PUBREC goes out and the held copies
  // are released on every shard (session_records.h, "Commit").
  // With `async` (ack_now) PUBREC goes out at once and only the order of
  // the records is kept: a restarted broker never takes a resent PUBLISH
  // for a duplicate while copies of the first one are missing.
  void CommitWhenDurable(Connection& conn, const mqtt::PubAck& pubrec, uint64_t origin,
                         uint64_t sequence_before, bool ack_now);
  // Whether a commit of `packet_id` from `client_id` is under way (a resent
  // PUBLISH then waits for its PUBREC).
  bool CommitPending(const std::string& client_id, uint16_t packet_id) const;
  // A PUBREL for a message whose commit is still under way (async, where
  // PUBREC did not wait): the commit then logs nothing for its packet id.
  void ReleasePendingCommit(const std::string& client_id, uint16_t packet_id);
  // `client_id` by value: callers pass a commit's own committer, and the
  // commits it finishes are erased under it.
  void DrainCommits(std::string client_id);
  void FinishCommit(uint64_t token);
  // The publisher's shard committed `origin`: send the copies held for it.
  void OnCommitted(uint64_t origin);
  // PUBREL/PUBCOMP/UNSUBACK to a logged session: once this shard's log has
  // written (async) or stored (sync) what came before.
  void SendWhenLogged(Connection& conn, const mqtt::Packet& packet);
  void OnDurableBarrier(int from_shard, uint64_t token);
  void OnDurableAck(uint64_t token, bool stored);
  void FinishDurableAck(uint64_t token);
  // A timer for the log's next Flush when no loop turn would bring it: the
  // async mode's periodic fdatasync, the disk-full retry.
  void ArmLogTimer();
  int64_t NowNs() const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(shard_.Now().time_since_epoch())
        .count();
  }

  // OnMail's dispatch by kind.
  void HandleMail(int from_shard, const shard::MailItem& item);

  // Output.
  void SendPacket(Connection& conn, const mqtt::Packet& packet);
  // PUBACK, PUBREC, PUBREL or PUBCOMP without properties, encoded in place
  // (SendPacket would build and, for MQTT 5, copy a whole Packet).
  void SendAck(Connection& conn, mqtt::PacketType type, uint16_t packet_id,
               mqtt::ReasonCode reason = mqtt::ReasonCode::kSuccess);

  // Run-time limits (limits_update.cc). The decoder options every new
  // connection starts with, from limits_.
  void SetDecodeOptions();
  // A connected client after ApplyLimits: its decoder's topic and payload
  // checks, and its publish rate (publish_throttle.h: a hook's own value
  // stays the ceiling).
  void RefreshConnectionLimits(Connection& conn);
  // At CONNECT: what the CONNACK about to be sent tells the client, which
  // binds it for the connection's life, and its publish throttle.
  void BindConnectLimits(Connection& conn, const ClientLimits& decided);

  shard::Shard& shard_;
  BrokerContext& context_;
  // This shard's copy of the limits: context_.limits at start, replaced by
  // ApplyLimits (Broker::SetLimits). Only this thread reads or writes it.
  Limits limits_;
  ShardStats& stats_;
  SessionMap sessions_;
  topic::SubscriptionIndex index_;
  topic::InterestMap interest_;
  topic::RetainedIndex<MessageRef> retained_;
  // The shard's log, when Options::durability is on (else null). The I/O
  // adapter is declared first so it outlives the writer.
  std::unique_ptr<ShardFileIo> log_io_;
  std::unique_ptr<store::LogWriter> log_;
  shard::TimerId log_timer_;
  // The stamp of the last retained record logged here: wall clock, but
  // strictly increasing (retained_records.h).
  int64_t retained_stamp_ = 0;
  // MESSAGE and QUEUED numbers (session_records.h): unique in this log.
  uint64_t next_log_number_ = 1;
  // The message whose MESSAGE record was logged last, and its number: a
  // message fanned out to many sessions is logged once. Held so the
  // pointer cannot be reused by another message.
  MessageRef logged_message_;
  uint64_t logged_message_number_ = 0;
  // --max-memory (spill.h; spill_store.cc). Null when there is no budget.
  std::shared_ptr<SpillTable> spill_;
  // Memory charged for the queued messages of this shard's sessions
  // (QueuedMemoryCharge), kept whether or not there is a budget.
  size_t queued_memory_ = 0;
  // With spill_: where logged_message_'s record goes, and the body made for
  // it if a copy was kept only in the log.
  uint64_t logged_message_sequence_ = UINT64_MAX;
  SpillLocation logged_message_where_;
  bool logged_message_located_ = false;
  std::weak_ptr<SpilledBody> logged_message_spill_;
  // Segment files open for reading spilled messages back.
  struct SpillFile {
    int fd = -1;
    explicit SpillFile(int f) : fd(f) {}
    SpillFile(const SpillFile&) = delete;
    SpillFile& operator=(const SpillFile&) = delete;
    ~SpillFile();
  };
  absl::flat_hash_map<uint64_t, std::shared_ptr<SpillFile>> spill_files_;
  // Shards the messages routed since the last AckWhenDurable were posted to.
  topic::ShardSet durable_targets_;
  // PUBLISH acknowledgements waiting for other shards' logs (AckWhenDurable).
  struct PendingDurableAck {
    shard::ConnId conn;
    mqtt::PubAck ack;
    int missing = 0;
    bool stored = true;
    // A QoS 2 commit (origin != 0): the publisher, the message's origin,
    // the shards holding copies, and whether every copy is on disk (the
    // commits of one publisher are made in the order its PUBLISHes came).
    bool commit = false;
    std::string committer;
    const Session* committer_session = nullptr;
    uint64_t origin = 0;  // 0 in async mode: copies are not held
    topic::ShardSet targets;
    bool ready = false;
    bool acked = false;  // async: PUBREC went out at once
    // async: PUBREL came before the commit; its packet id is not logged.
    bool released = false;
  };
  absl::flat_hash_map<uint64_t, PendingDurableAck> durable_acks_;
  // Commit tokens per publisher, in PUBLISH order.
  absl::flat_hash_map<std::string, std::deque<uint64_t>> commit_queue_;
  // Copies held until their message is committed, by origin.
  struct HeldCopy {
    std::string client_id;
    const Session* session;
    uint16_t packet_id;
    uint64_t item;
  };
  absl::flat_hash_map<uint64_t, std::vector<HeldCopy>> held_for_commit_;
  // Origins of QoS 2 messages routed here (DeliverToMatches) whose commit
  // has not arrived: only their copies wait for it. A copy of a committed
  // message (recovered, a retained message sent later) or one sent through
  // a shared subscription, which the commit notice may not reach, waits
  // only for its own records.
  absl::flat_hash_set<uint64_t> pending_origins_;
  // The origin a held copy of `message` waits for: its own when pending.
  uint64_t CommitToWaitFor(const Message& message, const std::string* shared_group) const {
    return shared_group == nullptr && message.origin() != 0 &&
                   pending_origins_.contains(message.origin())
               ? message.origin()
               : 0;
  }
  // Each logged session's commit mark (session_records.h); erased with it.
  absl::flat_hash_map<const Session*, uint64_t> commit_marks_;
  uint64_t CommitMarkOf(const Session& session) const {
    auto it = commit_marks_.find(&session);
    return it == commit_marks_.end() ? 0 : it->second;
  }
  // --durability=sync: the session has a QoS 2 message held for the disk;
  // later QoS 1/2 messages wait behind it, so they arrive in order.
  bool HoldsUnsent(const Session& session) const;
  // Per other shard: whether its messages made this shard append records
  // since its last kMailDurableBarrier (which then must wait for them).
  std::vector<bool> appended_for_;
  bool stopping_ = false;  // OnShutdown ran
  std::string record_scratch_;
  absl::flat_hash_map<uint64_t, PendingSuback> pending_subacks_;
  uint64_t next_token_ = 1;
  uint64_t generated_ids_ = 0;
  // --cluster-redis: CONNECTs held while their client id is claimed, by
  // claim token; set while a session is dropped for another node (its
  // state in Redis is the other node's now, not to be touched).
  struct PendingClaim {
    shard::ConnId id;
    std::string client_id;
  };
  absl::flat_hash_map<uint64_t, PendingClaim> pending_claims_;
  uint64_t claim_tokens_ = 0;
  // PauseForCluster's connections and their timer.
  bool cluster_congested_ = false;
  std::vector<shard::ConnId> cluster_paused_;
  shard::TimerId cluster_pause_timer_;
  bool releasing_session_ = false;
  // Drain tokens (their answers come back as claims) -> whether what they
  // read is dropped, and the sessions let go of that still forward to
  // Redis -> their generation.
  absl::flat_hash_map<uint64_t, bool> drains_;
  absl::flat_hash_map<std::string, uint64_t> forwarders_;
  uint64_t forwarder_generations_ = 0;
  // Client ids homed here -> number of congested sessions (on any shard)
  // pausing them; absent means 0. Outlives connections and sessions, so a
  // publisher that reconnects while paused stays paused.
  absl::flat_hash_map<std::string, int> publisher_pauses_;
  // One local subscription that matched the topic being routed.
  struct Match {
    Session* session;
    topic::SubscriptionOptions options;
  };
  // The local subscriptions matching the topic being routed, grouped by
  // session (CollectLocalMatches); reused so routing allocates nothing.
  std::vector<Match> match_scratch_;
  // Subscription Identifiers of one delivery (DeliverToMatches).
  mqtt::SubscriptionIds ids_scratch_;
  // Shared groups ("$share/{g}/{filter}") matching the topic being routed.
  std::vector<std::string> shared_scratch_;
  // Every shared group known on any shard: members per shard (this one's
  // own count included) and the cursor of this shard's weighted round robin.
  struct SharedGroupState {
    std::vector<uint32_t> members;  // indexed by shard
    uint64_t cursor = 0;
  };
  absl::flat_hash_map<std::string, SharedGroupState> shared_groups_;
  // Scratch for Route: the shards with a subscriber for the topic.
  topic::ShardSet interest_scratch_;
  // The publish batch being filled for each other shard (or nullptr), and
  // the shards that have one: posted when full, before any other mail to
  // that shard, and at the end of the loop turn (OnMailFlush).
  std::vector<PublishBatch*> publish_batches_;
  absl::InlinedVector<uint32_t, 4> batched_targets_;
  // The memory (spare_message_bytes_ from ::operator new) of the last
  // Message DeliverBatch built that nobody kept (a QoS 0 message copied
  // straight into its subscribers' output is not kept): the next is built in
  // it, still in this core's cache, and the allocator is not asked. Memory
  // of its own for each cost more than the message's crossing did (perf,
  // bench/RESULTS.md (a)).
  void* spare_message_ = nullptr;
  size_t spare_message_bytes_ = 0;
  // Batches the receivers gave back (kMailPublishBatchDone), to fill again;
  // up to kSpareBatches (1 MiB), the rest are freed.
  static constexpr size_t kSpareBatches = 256;
  std::vector<PublishBatch*> spare_batches_;
  // Route results by topic name, direct-mapped: a hot topic (a p2p pair, a
  // sensor stream) costs one hash and one compare instead of a walk down the
  // subscription trie and another down the interest map. An entry is valid
  // only while its generation is route_generation_, which every subscription
  // or interest change bumps, so a hit gives exactly what matching would.
  // Bounded: kRouteCacheSlots slots, topics up to kRouteCacheMaxTopic bytes
  // and results up to kRouteCacheMaxMatches sessions; others are not cached.
  // A hit reads the slot and nothing else for topics up to
  // kRouteCacheInlineTopic bytes and results up to two sessions (p2p, fan-in,
  // a sensor's stream): no pointer to follow to another cache line.
  static constexpr size_t kRouteCacheInlineTopic = 48;
  struct RouteCacheSlot {
    uint64_t generation = 0;  // 0: empty
    uint32_t topic_size = 0;
    absl::InlinedVector<Match, 2> matches;
    char inline_topic[kRouteCacheInlineTopic];
    std::string long_topic;  // the topic when longer than inline_topic
    topic::ShardSet shards;

    bool Holds(std::string_view topic) const;
    void SetTopic(std::string_view topic);
  };
  static constexpr size_t kRouteCacheSlots = 1024;
  static constexpr size_t kRouteCacheMaxTopic = 256;
  static constexpr size_t kRouteCacheMaxMatches = 32;
  std::unique_ptr<RouteCacheSlot[]> route_cache_{new RouteCacheSlot[kRouteCacheSlots]};
  uint64_t route_generation_ = 1;
  // The route cache hash of the topic CollectMatches last looked up (0 for
  // topics too long to cache), for Route to pass on with kMailPublish.
  size_t route_hash_ = 0;
  // The slot the last cached lookup used, and its topic's hash: a receive
  // buffer carries runs of one publisher's messages, mostly to one topic, so
  // this slot is tried before hashing (and it is still in L1).
  const RouteCacheSlot* last_route_slot_ = nullptr;
  size_t last_route_hash_ = 0;
  std::vector<uint8_t> encode_buffer_;
  // A QoS 0 PUBLISH is the same bytes for every subscriber of one protocol
  // layout (FlashMQ's trick): while DeliverToMatches fans `message` out, each
  // layout (3.1/3.1.1, 5.0) is encoded once and copied to every subscriber.
  struct PublishCache {
    const Message* message = nullptr;  // set only during DeliverToMatches
    bool filled[2] = {false, false};   // [0] 3.1 and 3.1.1, [1] 5.0
    std::vector<uint8_t> bytes[2];
  };
  PublishCache publish_cache_;
  // Offline sessions with an expiry or a delayed will running: a few of the
  // sessions, so kept here rather than in every Session. An entry is erased
  // (and its timers cancelled) before its session is resumed or destroyed,
  // so a timer that fires always finds a live session.
  struct OfflineState {
    shard::TimerId expiry_timer;
    shard::TimerId will_timer;
    // Wall clock: when the session went offline and when its delayed will
    // is due, for the log's snapshots.
    int64_t offline_since_wall_ns = 0;
    int64_t will_due_wall_ns = 0;
    // An MQTT 5 will whose Will Delay Interval has not run out since its
    // connection ended [MQTT-3.1.2-8, MQTT-3.1.3-9].
    std::unique_ptr<WillMessage> delayed_will;
  };
  absl::flat_hash_map<const Session*, OfflineState> offline_;
  // FeedRetainedBacklog's entries, per session; erased before the session
  // goes offline or is destroyed.
  struct RetainedBacklogEntry {
    MessageRef message;
    uint8_t qos = 1;
    uint32_t subscription_id = 0;
  };
  absl::flat_hash_map<const Session*, std::deque<RetainedBacklogEntry>> retained_backlog_;
  // Boxed: ClientInfo views point into an extra while hooks run, and must
  // not move when the map grows.
  absl::flat_hash_map<const Session*, std::unique_ptr<SessionExtra>> extras_;
  bool IsInlineSession(const Session& session) const {
    if (extras_.empty()) return false;
    auto it = extras_.find(&session);
    return it != extras_.end() && it->second->inline_sink != nullptr;
  }
  SessionExtra& EnsureExtra(const Session* session) {
    std::unique_ptr<SessionExtra>& extra = extras_[session];
    if (extra == nullptr) extra = std::make_unique<SessionExtra>();
    return *extra;
  }
  // The authenticator's Methods(), asked once (shardmq/auth.h).
  std::vector<std::string> auth_methods_;
  // Limits every connection's decoder starts with; the version is set at CONNECT.
  mqtt::DecodeOptions decode_options_;
  // Every connection's decoder decodes into this one Packet: a shard handles
  // one packet at a time, and ~900 bytes per idle connection add up.
  mqtt::Packet decode_scratch_;
};

}  // namespace shardmq::broker
