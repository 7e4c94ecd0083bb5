// CONNECT, DISCONNECT, keep-alive, wills and the end of sessions. Session
// expiry and will delay timers are in lifecycle.cc, enhanced authentication in
// handle_auth.cc.
#include <algorithm>
#include <string>

#include "base/log.h"
#include "broker/broker_link.h"
#include "broker/broker_shard.h"
#include "broker/client_id.h"
#include "broker/retained_recovery.h"

namespace shardmq::broker {
namespace {

constexpr uint16_t kNoKeepAliveCap = 65535;

// The Session Expiry Interval the client asked for: MQTT 5 says it outright
// (absent = 0); 3.x Clean Session 0 means a session that never expires.
uint32_t AskedSessionExpiry(const mqtt::Connect& connect) {
  if (connect.version == mqtt::ProtocolVersion::kV5) {
    return connect.properties.session_expiry_interval.value_or(0);
  }
  return connect.clean_start ? 0 : Session::kNeverExpires;
}

}  // namespace

bool BrokerShard::RedirectConnect(Connection& conn, const mqtt::Connect& connect) {
  const ServerRedirect& redirect = context_.redirect;
  if (redirect.kind == ServerRedirect::Kind::kNone) return false;
  ShardStats::Inc(stats_.redirects);
  mqtt::Properties properties;
  if (!redirect.server_reference.empty()) {
    properties.server_reference = redirect.server_reference;
  }
  // 3.x has no way to say where: 0x03 server unavailable (ConnackAndClose
  // maps both codes to it).
  ConnackAndClose(conn, connect.version,
                  redirect.kind == ServerRedirect::Kind::kMoved
                      ? mqtt::ReasonCode::kServerMoved
                      : mqtt::ReasonCode::kUseAnotherServer,
                  properties);
  return true;
}

bool BrokerShard::RefuseWithoutCertificate(Connection& conn, const mqtt::Connect& connect) {
  if (!IdentityIsUsername(conn) || !shard_.TlsPeerIdentity(conn.id).empty()) return false;
  // The user name is the certificate's to give: without one there is no
  // user, and the client's own User Name is not believed.
  ShardStats::Inc(stats_.auth_failures);
  SHARDMQ_LOG(kDebug, "refusing %s: no client certificate to take the user name from", conn.Peer());
  ConnackAndClose(conn, connect.version, mqtt::ReasonCode::kNotAuthorized);
  return true;
}

bool BrokerShard::WillSupported(Connection& conn, const mqtt::Connect& connect) {
  if (!connect.will.has_value()) return true;
  // A will the server could not publish is refused up front
  // [MQTT-3.2.2-12, MQTT-3.2.2-13]. (3.x has no code for it: no CONNACK.)
  if (connect.will->qos > limits_.max_qos) {
    ConnackAndClose(conn, connect.version, mqtt::ReasonCode::kQosNotSupported);
    return false;
  }
  if (connect.will->retain && !limits_.retain_available) {
    ConnackAndClose(conn, connect.version, mqtt::ReasonCode::kRetainNotSupported);
    return false;
  }
  return true;
}

mqtt::ReasonCode BrokerShard::AuthRefusal(const AuthDecision& decision, bool v5) {
  mqtt::ReasonCode reason = decision.reason_code >= 0x80
                                ? static_cast<mqtt::ReasonCode>(decision.reason_code)
                                : mqtt::ReasonCode::kNotAuthorized;
  // 3.x has two refusals: bad user name or password (0x04), and not
  // authorized (0x05) for everything else.
  if (!v5 && reason != mqtt::ReasonCode::kBadUserNameOrPassword) {
    reason = mqtt::ReasonCode::kNotAuthorized;
  }
  return reason;
}

void BrokerShard::HandleConnect(Connection& conn, const mqtt::Connect& connect,
                                absl::Span<const uint8_t> connect_bytes, bool auth_decided,
                                const ClientLimits* decided_limits, cluster::ClaimResult* claim) {
  conn.version = connect.version;
  const bool v5 = connect.version == mqtt::ProtocolVersion::kV5;

  std::string client_id(connect.client_id);
  bool assigned_id = false;
  if (client_id.empty()) {
    // 3.1.1 lets the server assign an id only to a clean session
    // [MQTT-3.1.3-7, MQTT-3.1.3-8]; 3.1 requires 1 to 23 characters.
    if (connect.version == mqtt::ProtocolVersion::kV31 ||
        (connect.version == mqtt::ProtocolVersion::kV311 && !connect.clean_start)) {
      ConnackAndClose(conn, connect.version, mqtt::ReasonCode::kClientIdentifierNotValid);
      return;
    }
    client_id = GenerateClientId(shard_.id(), shard_.shard_count(), &generated_ids_,
                                 context_.client_id_prefix);
    assigned_id = true;
  } else if (connect.version == mqtt::ProtocolVersion::kV31 && client_id.size() > 23) {
    ConnackAndClose(conn, connect.version, mqtt::ReasonCode::kClientIdentifierNotValid);
    return;
  }

  // An inline client's session is not for taking over (shardmq/inline_client.h).
  if (!extras_.empty()) {
    if (auto it = sessions_.find(client_id); it != sessions_.end()) {
      auto extra = extras_.find(it->second.get());
      if (extra != extras_.end() && extra->second->inline_sink != nullptr) {
        ConnackAndClose(conn, connect.version, mqtt::ReasonCode::kClientIdentifierNotValid);
        return;
      }
    }
  }

  // Checked before authentication, so that everything a hook allows gets
  // in unless the will's publish ACL refuses it.
  if (!WillSupported(conn, connect)) return;

  // The verified client certificate's subject (TLS listeners), for hooks,
  // and maybe the user name (RefuseWithoutCertificate made sure there is one).
  std::string certificate_identity;
  if (!context_.hooks.empty()) certificate_identity = shard_.TlsPeerIdentity(conn.id);
  ClientLimits limits{limits_.max_publish_rate, limits_.max_publish_bytes_rate};
  if (decided_limits != nullptr) limits = *decided_limits;
  const bool username_from_certificate = !context_.hooks.empty() && IdentityIsUsername(conn);
  std::optional<std::string_view> username = connect.username;
  if (username_from_certificate) username = certificate_identity;
  if (!auth_decided && HooksWant(kHookConnection)) {
    const std::string peer = conn.Peer();  // outlives the hook's views of it
    ConnectRequest request;
    request.limits = &limits;
    request.client.certificate_identity = certificate_identity;
    request.client.username_from_certificate = username_from_certificate;
    request.client.client_id = client_id;
    request.client.username = username;
    request.client.remote_address = peer;
    request.client.protocol_version = static_cast<int>(connect.version);
    request.client.shard = shard_.id();
    if (connect.password.has_value()) {
      request.password = std::string_view(reinterpret_cast<const char*>(connect.password->data()),
                                          connect.password->size());
    }
    if (conn.auth() != nullptr) request.auth_method = AuthMethodOf(conn);
    request.clean_start = connect.clean_start;
    // The answer comes back to this shard through the external mailbox; the
    // ConnId's generation makes a late answer for a closed socket harmless.
    request.defer = [link = context_.link, shard = shard_.id(), id = conn.id] {
      return AuthCompletion([link, shard, id](AuthDecision decision) {
        link->Post(shard, [id, decision](shard::ShardHandler& handler) {
          static_cast<BrokerShard&>(handler).FinishDeferredAuth(id, decision);
        });
      });
    };
    AuthDecision decision = context_.hooks.Authenticate(request);
    if (decision.kind == Decision::Kind::kDeny) {
      ShardStats::Inc(stats_.auth_failures);
      SHARDMQ_LOG(kDebug, "refusing %s (%s): an authentication hook said 0x%02x", conn.Peer(),
                  client_id, decision.reason_code);
      ConnackAndClose(conn, connect.version, AuthRefusal(decision, v5));
      return;
    }
    if (decision.kind == Decision::Kind::kPending) {
      // Hold everything until the answer; the connect timeout still runs.
      Connection::HeldConnect& held =
          *(conn.Extra().held = std::make_unique<Connection::HeldConnect>());
      held.connect.assign(reinterpret_cast<const char*>(connect_bytes.data()),
                          connect_bytes.size());
      held.limits = limits;
      conn.state = Connection::State::kAuthPending;
      shard_.PauseReading(conn.id);
      return;
    }
  }
  // In a cluster with Redis the id is first made this node's (a session
  // another node holds comes here); assigned ids are unique already.
  if (context_.redis != nullptr && claim == nullptr && !assigned_id) [[unlikely]] {
    if (HoldForClaim(conn, client_id, connect_bytes, limits)) return;
  }
  ShardStats::Inc(stats_.connects);
  // The CONNECT (and any authentication exchange) is complete.
  if (conn.timer.valid()) {
    shard_.CancelTimer(conn.timer);
    conn.timer = {};
  }

  if (connect.will.has_value()) {
    if (HooksWant(kHookPublish)) {
      // The will is this client's PUBLISH, made later: the publish ACL
      // decides now, while the client can still be told (as Mosquitto 2.0).
      const std::string peer = conn.Peer();
      ClientInfo client;
      client.client_id = client_id;
      client.username = username;
      client.remote_address = peer;
      client.protocol_version = static_cast<int>(connect.version);
      client.shard = shard_.id();
      client.certificate_identity = certificate_identity;
      client.username_from_certificate = username_from_certificate;
      Decision decision = context_.hooks.PublishCheck(client, connect.will->topic,
                                                      connect.will->qos, connect.will->retain);
      if (decision.kind == Decision::Kind::kDeny) {
        SHARDMQ_LOG(kDebug, "refusing %s (%s): will topic \"%s\" not allowed", conn.Peer(),
                    client_id, connect.will->topic);
        ConnackAndClose(conn, connect.version, AuthRefusal(decision, v5));
        return;
      }
    }
    auto will = std::make_unique<WillMessage>();
    const mqtt::Properties& will_properties = connect.will->properties;
    will->delay_interval = will_properties.will_delay_interval.value_or(0);
    Message::Fields fields;
    fields.topic = connect.will->topic;
    fields.payload = connect.will->payload;
    fields.qos = connect.will->qos;
    fields.retain = connect.will->retain;
    fields.publisher = client_id;
    // Only topic, payload and flags are kept in this Message; the properties
    // are applied when the will is published (PublishWill), which is also
    // when its Message Expiry Interval starts (section 3.1.3.2.4).
    if (v5) will->properties = std::make_unique<WillProperties>(will_properties);
    will->message = MessageRef::Adopt(Message::Make(fields));
    conn.Extra().will = std::move(will);
  }

  const uint32_t asked_expiry = AskedSessionExpiry(connect);
  const uint32_t granted_expiry =
      v5 ? std::min(asked_expiry, limits_.max_session_expiry) : asked_expiry;

  // The session: resumed, taken over, or new [MQTT-3.1.2-4..6].
  if (claim != nullptr) [[unlikely]]
    ApplyClaim(client_id, *claim);
  Session* session = nullptr;
  bool session_present = false;
  if (auto it = sessions_.find(client_id); it != sessions_.end()) {
    session = it->second.get();
    // A session whose expiry is 0 lasts only as long as its connection, so a
    // takeover ends it whatever the new CONNECT asks.
    const bool session_ends = connect.clean_start || !session->persistent;
    if (Connection* old = session->connection; old != nullptr) {
      // Only one connection per client id [MQTT-3.1.4-2]: the old one goes
      // with DISCONNECT 0x8E [MQTT-3.1.4-3].
      ShardStats::Inc(stats_.takeovers);
      if (HooksWant(kHookConnection)) {
        context_.hooks.ClientDisconnected(InfoFor(*session), DisconnectReason::kTakenOver);
      }
      if (old->version == mqtt::ProtocolVersion::kV5) {
        mqtt::Disconnect disconnect;
        disconnect.reason_code = mqtt::ReasonCode::kSessionTakenOver;
        SendPacket(*old, disconnect);
      }
      // It did not DISCONNECT, so its will is due: now if its session ends
      // here or it has no delay; a delayed will is cancelled because a new
      // connection arrived before the delay ran out [MQTT-3.1.3-9].
      if (std::unique_ptr<WillMessage> will = old->TakeWill();
          will != nullptr && (session_ends || will->delay_interval == 0)) {
        PublishWill(*will);
      }
      old->session = nullptr;
      old->state = Connection::State::kClosing;
      session->connection = nullptr;
      shard_.Close(old->id);
    } else {
      // An offline session comes back: its expiry stops, and a will still
      // waiting out its delay is never sent [MQTT-3.1.3-9].
      SessionResumed(*session);
    }
    if (session_ends) {
      EndSession(*session,
                 connect.clean_start ? SessionEndReason::kCleanStart : SessionEndReason::kClosed);
      session = nullptr;
    } else {
      session_present = true;
    }
  }
  if (session == nullptr) {
    session = &sessions_.Add(std::make_unique<Session>(client_id));
  }
  session->expiry_interval = granted_expiry;
  session->persistent = granted_expiry > 0;
  session->connection = &conn;
  conn.session = session;
  if (!context_.hooks.empty()) {
    // Who this session is, for hooks about it (also later, while offline).
    SessionExtra& extra = EnsureExtra(session);
    // `username` may view certificate_identity: copied before it moves.
    if (username.has_value()) {
      extra.username = std::string(*username);
    } else {
      extra.username.reset();
    }
    extra.peer = conn.Peer();
    extra.protocol_version = static_cast<int>(connect.version);
    extra.certificate_identity = std::move(certificate_identity);
    extra.username_from_certificate = username_from_certificate;
  }
  // (After the extras: the record carries the user name.)
  if (log_ != nullptr) LogSessionAtConnect(*session, connect.version);
  conn.state = Connection::State::kConnected;
  conn.keep_alive = connect.keep_alive;
  conn.problem_information = !v5 || connect.properties.request_problem_information.value_or(1);
  // A cap on Keep Alive can be told only to MQTT 5 clients (Server Keep Alive
  // [MQTT-3.2.2-21, MQTT-3.2.2-22]); see Limits::max_keepalive for 3.x.
  bool server_keep_alive = false;
  const uint16_t keepalive_cap = limits_.max_keepalive;
  if (v5 && keepalive_cap != kNoKeepAliveCap &&
      (conn.keep_alive == 0 || conn.keep_alive > keepalive_cap)) {
    conn.keep_alive = keepalive_cap;
    server_keep_alive = true;
  }
  if (v5) {
    const mqtt::Properties& asked = connect.properties;
    conn.client_max_packet_size = asked.maximum_packet_size.value_or(UINT32_MAX);
    conn.client_receive_maximum = asked.receive_maximum.value_or(65535);
    conn.client_topic_alias_maximum = asked.topic_alias_maximum.value_or(0);
  }

  conn.decoder.set_protocol_version(connect.version);
  BindConnectLimits(conn, limits);
  // Congested subscribers may still be holding this client id back.
  ApplyPauseState(conn);

  mqtt::Connack connack;
  connack.session_present = session_present;
  std::string response_information;
  if (v5) {
    mqtt::Properties& properties = connack.properties;
    if (assigned_id) properties.assigned_client_identifier = session->client_id;
    // Echoed only when the server changed it (section 3.2.2.3.2).
    if (granted_expiry != asked_expiry) properties.session_expiry_interval = granted_expiry;
    if (server_keep_alive) properties.server_keep_alive = conn.keep_alive;
    properties.receive_maximum = limits_.receive_maximum;
    properties.maximum_packet_size = limits_.max_packet_size;
    // Maximum QoS may only be 0 or 1; absent means 2.
    if (limits_.max_qos < 2) properties.maximum_qos = limits_.max_qos;
    properties.retain_available = limits_.retain_available ? 1 : 0;
    properties.wildcard_subscription_available = 1;
    properties.subscription_identifier_available = 1;
    properties.topic_alias_maximum = limits_.topic_alias_maximum;
    properties.shared_subscription_available = 1;
    if (connect.properties.request_response_information.value_or(0) == 1 &&
        !context_.response_information.empty()) {
      // [MQTT-3.1.2-28]: only when asked. Per client, so clients do not
      // answer into each other's response topics.
      response_information = context_.response_information + session->client_id;
      properties.response_information = response_information;
    }
    if (conn.auth() != nullptr) AddAuthToConnack(conn, &properties);
  }
  SendPacket(conn, connack);
  if (context_.redis != nullptr) [[unlikely]] {
    ClusterSessionConnected(*session, session_present, claim != nullptr && claim->found);
  }
  if (HooksWant(kHookConnection)) {
    context_.hooks.SessionEstablished(InfoFor(*session), session_present);
  }

  if (conn.keep_alive > 0) {
    // [MQTT-3.1.2-24]: one and a half times the Keep Alive without a packet.
    ArmKeepAlive(conn.id, std::chrono::milliseconds(conn.keep_alive * 1500));
  }
  if (session_present) {
    // Unacknowledged PUBLISH and PUBREL packets go again first, with their
    // original packet ids [MQTT-4.4.0-1], then whatever queued meanwhile.
    ResendInflight(*session);
    PumpQueue(*session);
  }
}

void BrokerShard::FinishDeferredAuth(shard::ConnId id, AuthDecision decision) {
  Connection* conn = Find(id);
  if (conn == nullptr || conn->state != Connection::State::kAuthPending) return;
  std::unique_ptr<Connection::HeldConnect> held = conn->TakeHeld();
  conn->state = Connection::State::kAwaitingConnect;
  const bool v5 = conn->version == mqtt::ProtocolVersion::kV5;
  if (decision.kind == Decision::Kind::kDeny || decision.kind == Decision::Kind::kPending) {
    ShardStats::Inc(stats_.auth_failures);
    if (decision.kind == Decision::Kind::kPending) decision = AuthDecision::Deny(0x80);
    ConnackAndClose(*conn, conn->version, AuthRefusal(decision, v5));
    return;
  }
  ContinueHeldConnect(*conn, *held, /*claim=*/nullptr);
}

bool BrokerShard::ContinueHeldConnect(Connection& conn, Connection::HeldConnect& held,
                                      cluster::ClaimResult* claim) {
  const shard::ConnId id = conn.id;
  // Decode the kept CONNECT again: a packet of our own, as after AUTH.
  auto bytes = absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(held.connect.data()),
                                         held.connect.size());
  mqtt::Packet packet;
  if (mqtt::DecodePacket(bytes, decode_options_, &packet).status != mqtt::DecodeStatus::kOk) {
    ProtocolClose(conn, mqtt::ReasonCode::kImplementationSpecificError,
                  "CONNECT no longer decodes");
    return false;
  }
  const bool clean_start = std::get<mqtt::Connect>(packet).clean_start;
  HandleConnect(conn, std::get<mqtt::Connect>(packet), bytes, /*auth_decided=*/true, &held.limits,
                claim);
  Connection* after = Find(id);
  if (after != nullptr && after->state == Connection::State::kClaimPending) {
    // Its client id is being claimed across the cluster: what came after
    // the CONNECT waits on.
    after->held()->input = std::move(held.input);
    return clean_start;
  }
  if (after == nullptr || after->state != Connection::State::kConnected) return clean_start;
  // Back-pressure may want it paused still (ApplyPauseState in HandleConnect).
  if (!after->reading_paused) shard_.ResumeReading(id);
  if (!held.input.empty()) {
    OnData(id, absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(held.input.data()),
                                         held.input.size()));
  }
  return clean_start;
}

void BrokerShard::ArmKeepAlive(shard::ConnId id, shard::Clock::duration delay) {
  Connection* conn = Find(id);
  if (conn == nullptr) return;
  conn->timer = shard_.ScheduleTimer(delay, [this, id] {
    Connection* c = Find(id);
    if (c == nullptr || c->state != Connection::State::kConnected) return;
    c->timer = {};
    auto limit = std::chrono::milliseconds(c->keep_alive * 1500);
    // While back-pressure holds its reading, the client's PINGREQs wait
    // unread in the socket: that silence is ours, not the client's.
    if (c->reading_paused) c->last_packet = shard_.Now();
    auto idle = shard_.Now() - c->last_packet;
    if (idle >= limit) {
      ShardStats::Inc(stats_.keepalive_timeouts);
      c->disconnect_reason = DisconnectReason::kKeepAliveTimeout;
      ProtocolClose(*c, mqtt::ReasonCode::kKeepAliveTimeout, "keep-alive timeout");
    } else {
      ArmKeepAlive(id, limit - idle);
    }
  });
}

void BrokerShard::HandleDisconnect(Connection& conn, const mqtt::Disconnect& disconnect) {
  if (conn.version == mqtt::ProtocolVersion::kV5 &&
      disconnect.properties.session_expiry_interval.has_value() && conn.session != nullptr) {
    Session& session = *conn.session;
    const uint32_t asked = *disconnect.properties.session_expiry_interval;
    // A session that was to end with its connection may not be turned into a
    // persistent one on the way out [MQTT-3.14.2-2].
    if (session.expiry_interval == 0 && asked != 0) {
      ProtocolClose(conn, mqtt::ReasonCode::kProtocolError,
                    "Session Expiry Interval set on DISCONNECT after 0 at CONNECT");
      return;
    }
    session.expiry_interval = std::min(asked, limits_.max_session_expiry);
    session.persistent = session.expiry_interval > 0;
  }
  conn.disconnect_reason =
      conn.version == mqtt::ProtocolVersion::kV5 &&
              disconnect.reason_code == mqtt::ReasonCode::kDisconnectWithWillMessage
          ? DisconnectReason::kClientDisconnectWithWill
          : DisconnectReason::kClientDisconnect;
  // A clean DISCONNECT discards the will [MQTT-3.1.2-10], except MQTT 5's
  // "disconnect with will message" (0x04).
  if (conn.version != mqtt::ProtocolVersion::kV5 ||
      disconnect.reason_code != mqtt::ReasonCode::kDisconnectWithWillMessage) {
    conn.TakeWill();
  }
  DetachSession(conn, /*publish_will=*/true);
  conn.state = Connection::State::kClosing;
  shard_.Close(conn.id);
}

void BrokerShard::DetachSession(Connection& conn, bool publish_will) {
  std::unique_ptr<WillMessage> will = conn.TakeWill();
  if (!publish_will) will.reset();
  Session* session = conn.session;
  if (session == nullptr) {
    if (will != nullptr) PublishWill(*will);
    return;
  }
  if (HooksWant(kHookConnection)) {
    context_.hooks.ClientDisconnected(InfoFor(*session), conn.disconnect_reason);
  }
  conn.session = nullptr;
  session->connection = nullptr;
  // An offline session drops at its bound instead of holding publishers back.
  ReleaseBackpressure(*session);
  SettleRetainedBacklog(*session, /*keep=*/session->persistent);
  // What it got through shared subscriptions and did not acknowledge goes
  // to the other members now.
  RedeliverShared(*session);
  if (will != nullptr) {
    // The will waits out its delay only while the session lives on; a session
    // ending now ends the wait [MQTT-3.1.2-8].
    if (session->persistent && will->delay_interval > 0) {
      const int64_t due = WallNowNs() + int64_t{will->delay_interval} * 1'000'000'000;
      LogWill(*session, *will, due);
      const uint32_t delay = will->delay_interval;
      DelayWill(*session, std::move(will), delay, due);
    } else {
      PublishWill(*will);
    }
  }
  if (session->persistent) {
    LogSessionOffline(*session);
    const int64_t wall = WallNowNs();
    SessionWentOffline(*session, wall);
    if (context_.redis != nullptr) [[unlikely]]
      ParkSession(*session, wall);
  } else {
    EndSession(*session);
  }
}

void BrokerShard::PublishWill(WillMessage& will) {
  ShardStats::Inc(stats_.wills_published);
  MessageRef message = std::move(will.message);
  Message::Fields fields{message->topic(), message->payload(), message->qos(), message->retain(),
                         message->publisher()};
  if (HooksWant(kHookWill)) context_.hooks.WillSent(message->publisher(), ViewOf(*message));
  // Message::Make copies the properties and starts the expiry interval now;
  // `will` keeps them alive until Route returns.
  if (will.properties != nullptr) fields.properties = &will.properties->properties;
  bool shared_here = true;
  if (context_.cluster != nullptr) [[unlikely]] {
    shared_here = !ExportToCluster(fields);
  }
  Route(fields, shared_here);
}

void BrokerShard::EndSession(Session& session, SessionEndReason why) {
  // Logged first, so the subscriptions removed below log nothing.
  LogSessionEnd(session);
  // A will still waiting out its delay goes now: the session ends first
  // [MQTT-3.1.2-8, 3.1.3.2.2].
  if (std::unique_ptr<WillMessage> will = ForgetOffline(session)) PublishWill(*will);
  RedeliverShared(session);
  // Copy the filters first: RemoveSubscription edits the map.
  std::vector<std::string> filters;
  filters.reserve(session.subscriptions.size());
  for (const auto& [filter, options] : session.subscriptions) filters.push_back(filter);
  for (const std::string& filter : filters) RemoveSubscription(session, filter);
  ReleaseBackpressure(session);
  SettleRetainedBacklog(session, /*keep=*/false);
  if (session.connection != nullptr) session.connection->session = nullptr;
  if (HooksWant(kHookConnection)) context_.hooks.SessionTerminated(InfoFor(session), why);
  if (context_.redis != nullptr) [[unlikely]]
    ClusterSessionEnded(session, why);
  if (!extras_.empty()) extras_.erase(&session);
  ForgetQueue(session);
  std::string client_id = session.client_id;
  sessions_.erase(client_id);  // destroys the session
}

}  // namespace shardmq::broker
