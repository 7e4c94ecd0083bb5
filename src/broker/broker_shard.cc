// BrokerShard: connection lifecycle, the input path, the dispatch switch,
// closing, and mail from other shards. Packet handlers live in handle_*.cc,
// delivery in delivery.cc.
#include "broker/broker_shard.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <utility>

#include "base/log.h"
#include "base/log_throttle.h"
#include "broker/client_id.h"
#include "broker/mail.h"

namespace shardmq::broker {

BrokerShard::BrokerShard(shard::Shard& shard, BrokerContext& context)
    : shard_(shard),
      context_(context),
      limits_(context.limits),
      stats_(*context.stats[shard.id()]) {
  SetDecodeOptions();
  if (context.authenticator != nullptr) auth_methods_ = context.authenticator->Methods();
  if (!context.store.empty()) {
    // Broker::Start recovered and opened this shard's log before the thread
    // ran; from here on only this thread touches it.
    BrokerContext::ShardStore& store = context.store[static_cast<size_t>(shard.id())];
    log_io_ = std::move(store.io);
    log_io_->Bind(&shard);
    log_ = std::move(store.writer);
    retained_stamp_ = context.retained_stamp_floor;
    next_log_number_ = context.next_log_number;
    appended_for_.assign(static_cast<size_t>(shard.shard_count()), false);
    if (context.spill_budget != 0) StartSpilling();
    RestoreSessions();
  }
  publish_batches_.assign(static_cast<size_t>(shard.shard_count()), nullptr);
  // Every shard holds the whole retained set; the Messages are shared.
  for (const MessageRef& message : context.recovered_retained) {
    retained_.Set(std::string(message->topic()), message);
  }
  MarkShardThread();
}

BrokerShard::~BrokerShard() {
  // (The loop posts every batch before it ends; a shard that never ran may
  // still hold one.)
  for (PublishBatch* batch : publish_batches_) {
    if (batch != nullptr) PublishBatch::Destroy(batch);
  }
  for (PublishBatch* batch : spare_batches_) PublishBatch::Destroy(batch);
  ::operator delete(spare_message_);
  // The sessions (and the spilled bodies they hold) outlive the log writer.
  if (spill_ != nullptr) spill_->Detach();
}

void Connection::SetPeer(const shard::PeerInfo& peer) {
  if (peer.addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&peer.addr);
    peer_family = AF_INET;
    std::memcpy(peer_address.address.data(), &a->sin_addr, sizeof(a->sin_addr));
    peer_address.port = a->sin_port;
  } else if (peer.addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&peer.addr);
    peer_family = AF_INET6;
    std::memcpy(peer_address.address.data(), &a->sin6_addr, sizeof(a->sin6_addr));
    peer_address.port = a->sin6_port;
  } else {
    peer_family = 0;
    std::string text = peer.ToString();
    if (text != "unix") Extra().peer_text = std::move(text);
  }
}

std::string Connection::Peer() const {
  shard::PeerInfo info;
  if (peer_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&info.addr);
    a->sin_family = AF_INET;
    std::memcpy(&a->sin_addr, peer_address.address.data(), sizeof(a->sin_addr));
    a->sin_port = peer_address.port;
    info.addr_len = sizeof(sockaddr_in);
  } else if (peer_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&info.addr);
    a->sin6_family = AF_INET6;
    std::memcpy(&a->sin6_addr, peer_address.address.data(), sizeof(a->sin6_addr));
    a->sin6_port = peer_address.port;
    info.addr_len = sizeof(sockaddr_in6);
  } else {
    return extras != nullptr && !extras->peer_text.empty() ? extras->peer_text : "unix";
  }
  return info.ToString();
}

Connection* BrokerShard::Find(shard::ConnId id) {
  return static_cast<Connection*>(shard_.UserData(id));
}

void BrokerShard::OnOpen(shard::ConnId id, const shard::PeerInfo& peer,
                         absl::Span<const uint8_t> initial_bytes) {
  // A hand-off always carries the CONNECT it read; only fresh accepts are
  // asked about (on the accepting shard).
  if (initial_bytes.empty() && HooksWant(kHookConnection)) {
    const std::string address = peer.ToString();
    if (context_.hooks.Accept(address, shard_.id()).kind == Decision::Kind::kDeny) {
      SHARDMQ_LOG(kDebug, "refusing %s: an accept hook said no", address);
      shard_.Abort(id);
      return;
    }
  }
  auto* conn = new Connection(decode_options_, &decode_scratch_);
  conn->id = id;
  conn->SetPeer(peer);
  conn->last_packet = shard_.Now();
  shard_.SetUserData(id, conn);
  // A socket that never completes CONNECT must not hold a slot for ever.
  conn->timer =
      shard_.ScheduleTimer(std::chrono::milliseconds(limits_.connect_timeout_ms), [this, id] {
        Connection* c = Find(id);
        // An authentication exchange must finish in the same time. (A claim
        // of the client id across a cluster is the broker's wait, bounded
        // by its own timer: HoldForClaim.)
        if (c != nullptr && (c->state == Connection::State::kAwaitingConnect ||
                             c->state == Connection::State::kAuthenticating ||
                             c->state == Connection::State::kAuthPending)) {
          c->timer = {};
          ShardStats::Inc(stats_.connect_timeouts);
          SHARDMQ_LOG(kDebug, "closing %s: no CONNECT within %d ms", c->Peer(),
                      limits_.connect_timeout_ms);
          c->state = Connection::State::kClosing;
          shard_.Abort(id);
        }
      });
  if (!initial_bytes.empty()) OnData(id, initial_bytes);
}

void BrokerShard::OnData(shard::ConnId id, absl::Span<const uint8_t> bytes) {
  Connection* conn = Find(id);
  if (conn == nullptr) return;
  switch (conn->state) {
    case Connection::State::kAwaitingConnect:
      HandleBeforeConnect(*conn, bytes);
      return;
    case Connection::State::kClosing:
      return;
    case Connection::State::kAuthPending:
    case Connection::State::kClaimPending:
      // Reading is paused; these are bytes the kernel had already read.
      // Bounded: beyond one largest packet more the client is flooding.
      if (conn->held()->input.size() + bytes.size() >
          conn->decoder.options().max_packet_size + 65536) {
        conn->state = Connection::State::kClosing;
        shard_.Abort(id);
        return;
      }
      conn->held()->input.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      return;
    case Connection::State::kAuthenticating:
    case Connection::State::kConnected:
      break;
  }
  if (conn->throttle != nullptr && conn->throttle->holding) {
    // Read before the pause took hold: kept for when the throttle ends.
    HoldThrottled(*conn, bytes);
    return;
  }
  mqtt::DecodeResult result = conn->decoder.Feed(
      bytes, [&](const mqtt::Packet& packet) { return HandlePacket(*conn, packet); });
  if (result.status == mqtt::DecodeStatus::kError && conn->state != Connection::State::kClosing) {
    ProtocolClose(*conn, result.reason, result.what);
  } else if (result.status == mqtt::DecodeStatus::kOk &&
             conn->state == Connection::State::kConnected && conn->throttle != nullptr &&
             conn->throttle->holding) {
    // The publisher went over its rate mid-chunk: the rest waits.
    HoldThrottled(*conn, bytes.subspan(result.consumed));
  }
}

void BrokerShard::HandleBeforeConnect(Connection& conn, absl::Span<const uint8_t> bytes) {
  // A CONNECT that arrives whole (nearly all) is decoded from `bytes`, valid
  // for this call; only the start of a split one is copied and kept.
  std::string* pending = conn.extras != nullptr && !conn.extras->pending_connect.empty()
                             ? &conn.extras->pending_connect
                             : nullptr;
  absl::Span<const uint8_t> input = bytes;
  if (pending != nullptr) {
    pending->append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    input = absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(pending->data()),
                                      pending->size());
  }
  mqtt::Packet packet;
  mqtt::DecodeResult result = mqtt::DecodePacket(input, decode_options_, &packet);
  if (result.status == mqtt::DecodeStatus::kNeedMore) {
    if (pending == nullptr) {
      conn.Extra().pending_connect.assign(reinterpret_cast<const char*>(bytes.data()),
                                          bytes.size());
    }
    return;
  }
  if (result.status == mqtt::DecodeStatus::kError) {
    ShardStats::Inc(stats_.protocol_errors);
    SHARDMQ_LOG(kDebug, "closing %s before CONNECT: %s", conn.Peer(), result.what);
    // An unsupported name or level is answered (0x01 / 0x84, even for level 0,
    // [MQTT-3.1.2-2]); other errors only once CONNECT named its version.
    if (result.reason == mqtt::ReasonCode::kUnsupportedProtocolVersion ||
        result.protocol_level != 0) {
      // CONNECT was recognised far enough to answer in its own format.
      mqtt::ProtocolVersion version =
          result.reason == mqtt::ReasonCode::kUnsupportedProtocolVersion
              ? mqtt::ConnackVersionForLevel(result.protocol_level)
              : static_cast<mqtt::ProtocolVersion>(result.protocol_level & 0x7F);
      ConnackAndClose(conn, version, result.reason);
    } else {
      conn.state = Connection::State::kClosing;
      shard_.Abort(conn.id);
    }
    return;
  }

  const auto& connect = std::get<mqtt::Connect>(packet);
  // A broker sending everyone elsewhere need not find the home shard first.
  if (RedirectConnect(conn, connect)) return;
  if (RefuseWithoutCertificate(conn, connect)) return;
  // Every connection of a client id lives on the id's home shard (DESIGN.md,
  // step 2). An empty id gets a generated one homed right here.
  if (!connect.client_id.empty()) {
    int home = HomeShard(connect.client_id, shard_.shard_count());
    if (home != shard_.id()) {
      ShardStats::Inc(stats_.handoffs);
      conn.state = Connection::State::kClosing;
      shard_.HandOff(conn.id, home, input);
      return;
    }
  }
  // Packets that followed CONNECT in the same read are decoded after it.
  std::string rest(reinterpret_cast<const char*>(input.data()) + result.consumed,
                   input.size() - result.consumed);
  AuthProgress progress = AuthProgress::kProceed;
  if (connect.version == mqtt::ProtocolVersion::kV5 &&
      connect.properties.authentication_method.has_value()) {
    // On the home shard, so the exchange and then the session live together.
    progress = BeginConnectAuth(conn, connect, input.first(result.consumed));
  }
  if (progress == AuthProgress::kProceed)
    HandleConnect(conn, connect, input.first(result.consumed));
  if (pending != nullptr) std::string().swap(*pending);
  if (conn.state != Connection::State::kClosing && !rest.empty()) {
    OnData(conn.id,
           absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(rest.data()), rest.size()));
  }
}

bool BrokerShard::HandlePacket(Connection& conn, const mqtt::Packet& packet) {
  if (conn.state == Connection::State::kAuthenticating) {
    return HandlePacketWhileAuthenticating(conn, packet);
  }
  if (conn.state != Connection::State::kConnected) return false;
  // Keep-alive counts whole control packets, so a client that trickles half a
  // packet is still closed in time [MQTT-3.1.2-24].
  conn.last_packet = shard_.Now();
  switch (mqtt::GetPacketType(packet)) {
    case mqtt::PacketType::kPublish:
      HandlePublish(conn, std::get<mqtt::Publish>(packet));
      break;
    case mqtt::PacketType::kPuback:
    case mqtt::PacketType::kPubrec:
    case mqtt::PacketType::kPubrel:
    case mqtt::PacketType::kPubcomp:
      HandlePubAck(conn, std::get<mqtt::PubAck>(packet));
      break;
    case mqtt::PacketType::kSubscribe:
      HandleSubscribe(conn, std::get<mqtt::Subscribe>(packet));
      break;
    case mqtt::PacketType::kUnsubscribe:
      HandleUnsubscribe(conn, std::get<mqtt::Unsubscribe>(packet));
      break;
    case mqtt::PacketType::kPingreq:
      SendPacket(conn, mqtt::PingResp{});
      break;
    case mqtt::PacketType::kDisconnect:
      HandleDisconnect(conn, std::get<mqtt::Disconnect>(packet));
      break;
    case mqtt::PacketType::kAuth:
      HandleAuth(conn, std::get<mqtt::Auth>(packet));
      break;
    case mqtt::PacketType::kConnect:
      // A second CONNECT is a protocol violation [MQTT-3.1.0-2].
      ProtocolClose(conn, mqtt::ReasonCode::kProtocolError, "second CONNECT");
      break;
    default:
      // CONNACK, SUBACK, UNSUBACK and PINGRESP never come from a client.
      ProtocolClose(conn, mqtt::ReasonCode::kProtocolError, "packet a client may not send");
      break;
  }
  // A throttled publisher's next packets wait (publish_throttle.cc).
  return conn.state == Connection::State::kConnected &&
         (conn.throttle == nullptr || !conn.throttle->holding);
}

void BrokerShard::ProtocolClose(Connection& conn, mqtt::ReasonCode reason, const char* what) {
  if (conn.state == Connection::State::kClosing) return;
  ShardStats::Inc(stats_.protocol_errors);
  // Every close for a broken rule or a limit (packet too large, receive
  // maximum, ...) is visible without debug logging, at most once a second.
  SHARDMQ_LOG_THROTTLED(kWarning, "closing %s (%s): %s (reason 0x%02x)", conn.Peer(),
                        conn.session ? conn.session->client_id : std::string("-"), what,
                        static_cast<int>(reason));
  if (conn.disconnect_reason == DisconnectReason::kConnectionLost) {
    conn.disconnect_reason = DisconnectReason::kProtocolError;
  }
  DisconnectAndClose(conn, reason, what);
}

void BrokerShard::DisconnectAndClose(Connection& conn, mqtt::ReasonCode reason,
                                     std::string_view what) {
  if (conn.state == Connection::State::kClosing) return;
  // Not a protocol error: a failed re-authentication.
  if (conn.disconnect_reason == DisconnectReason::kConnectionLost) {
    conn.disconnect_reason = DisconnectReason::kNotAuthorized;
  }
  SHARDMQ_LOG(kDebug, "closing %s (%s): %s", conn.Peer(),
              conn.session ? conn.session->client_id : std::string("-"), what);
  if (conn.state == Connection::State::kAuthenticating ||
      conn.state == Connection::State::kAuthPending ||
      conn.state == Connection::State::kClaimPending) {
    // No packet but CONNACK may precede CONNACK [MQTT-3.2.0-1].
    mqtt::Properties properties;
    if (conn.problem_information && !what.empty()) properties.reason_string = what;
    ConnackAndClose(conn, conn.version, reason, properties);
    return;
  }
  if (conn.version == mqtt::ProtocolVersion::kV5) {
    mqtt::Disconnect disconnect;
    disconnect.reason_code = reason;
    // DISCONNECT may carry a Reason String even when the client asked for no
    // problem information [MQTT-3.1.2-29].
    if (!what.empty()) disconnect.properties.reason_string = what;
    SendPacket(conn, disconnect);
  }
  DetachSession(conn, /*publish_will=*/true);
  conn.state = Connection::State::kClosing;
  shard_.Close(conn.id);
}

void BrokerShard::ConnackAndClose(Connection& conn, mqtt::ProtocolVersion version,
                                  mqtt::ReasonCode reason, const mqtt::Properties& properties) {
  conn.version = version;
  mqtt::Connack connack;
  if (version == mqtt::ProtocolVersion::kV5) {
    connack.reason_code = reason;
    connack.properties = properties;
  } else {
    connack.return_code = mqtt::ToConnectReturnCode(reason);
  }
  // A 3.x CONNECT that is malformed or breaks a rule gets no CONNACK
  // [MQTT-3.1.4-1]: only the refusals 3.1.1 has return codes for are
  // answered. (ToConnectReturnCode maps everything else to 0x03, "server
  // unavailable", which would tell the client a lie.) A redirect is the
  // truth in 3.x terms: this server will not serve you.
  const bool answerable = reason == mqtt::ReasonCode::kUnsupportedProtocolVersion ||
                          reason == mqtt::ReasonCode::kClientIdentifierNotValid ||
                          reason == mqtt::ReasonCode::kBadUserNameOrPassword ||
                          reason == mqtt::ReasonCode::kNotAuthorized ||
                          reason == mqtt::ReasonCode::kServerMoved ||
                          reason == mqtt::ReasonCode::kUseAnotherServer;
  if (version == mqtt::ProtocolVersion::kV5 || answerable) SendPacket(conn, connack);
  conn.state = Connection::State::kClosing;
  shard_.Close(conn.id);
}

void BrokerShard::OnClosed(shard::ConnId, shard::CloseReason reason, void* user_data) {
  auto* conn = static_cast<Connection*>(user_data);
  // The id is already stale here (UserData(id) is nullptr); the runtime hands
  // back the pointer. A peer that went away without DISCONNECT is detached
  // here, will and all.
  if (conn == nullptr) return;
  if (conn->timer.valid()) shard_.CancelTimer(conn->timer);
  if (conn->throttle != nullptr && conn->throttle->resume_timer.valid()) {
    shard_.CancelTimer(conn->throttle->resume_timer);
  }
  // A socket that died under a connected client: the will goes out
  // ([MQTT-3.1.2-8]); a hand-off is not an end of anything.
  if (reason != shard::CloseReason::kHandedOff) {
    DetachSession(*conn, /*publish_will=*/true);
  }
  delete conn;
}

void BrokerShard::OnShutdown() {
  stopping_ = true;
  // Tell MQTT 5 clients why the connection ends (0x8B); the runtime flushes
  // and closes every connection after this returns.
  for (auto& [client_id, session] : sessions_) {
    Connection* conn = session->connection;
    if (conn == nullptr || conn->state != Connection::State::kConnected) continue;
    conn->disconnect_reason = DisconnectReason::kServerShutdown;
    if (conn->version == mqtt::ProtocolVersion::kV5) {
      mqtt::Disconnect disconnect;
      disconnect.reason_code = mqtt::ReasonCode::kServerShuttingDown;
      SendPacket(*conn, disconnect);
      ShardStats::Inc(stats_.shutdown_disconnects);
    }
    // A broker stopping is not the client's fault: no will, as Mosquitto and
    // the MQTT 5 text on server-initiated DISCONNECT allow.
    conn->TakeWill();
  }
}

void BrokerShard::OnMail(int from_shard, const shard::MailItem& item) {
  // For kMailDurableBarrier: did the sender's messages make us log anything?
  const uint64_t sequence_before = log_ != nullptr ? log_->next_sequence() : 0;
  HandleMail(from_shard, item);
  if (log_ != nullptr && log_->next_sequence() != sequence_before) {
    appended_for_[static_cast<size_t>(from_shard)] = true;
  }
}

void BrokerShard::HandleMail(int from_shard, const shard::MailItem& item) {
  switch (item.kind) {
    case kMailPublish: {
      MessageRef message = MessageRef::Adopt(static_cast<const Message*>(item.ptr));
      CollectMatches(message->topic(), /*want_shards=*/false, item.arg);
      DeliverToMatches(message);
      break;
    }
    case kMailPublishBatch: {
      auto* batch = static_cast<PublishBatch*>(item.ptr);
      DeliverBatch(*batch);
      if (shard::internal::tls_shard_id == shard_.id()) {
        shard::MailItem done;
        done.kind = kMailPublishBatchDone;
        done.ptr = batch;
        shard_.Post(from_shard, done);  // (order does not matter: not PostMail)
      } else {
        PublishBatch::Destroy(batch);  // ShardGroup::Join delivering leftovers
      }
      break;
    }
    case kMailPublishBatchDone: {
      auto* batch = static_cast<PublishBatch*>(item.ptr);
      if (spare_batches_.size() < kSpareBatches) {
        batch->Clear();
        spare_batches_.push_back(batch);
      } else {
        PublishBatch::Destroy(batch);
      }
      break;
    }
    case kMailRetain: {
      MessageRef message = MessageRef::Adopt(static_cast<const Message*>(item.ptr));
      if (message->payload().empty()) {
        retained_.Erase(message->topic());
      } else {
        std::string topic(message->topic());
        retained_.Set(topic, message);
      }
      LogRetainedIfOwner(*message);
      break;
    }
    case kMailDurableBarrier:
      OnDurableBarrier(from_shard, item.arg);
      break;
    case kMailDurableAck:
      OnDurableAck(item.arg, item.aux != 0);
      break;
    case kMailCommitted:
      OnCommitted(item.arg);
      break;
    case kMailInterestAdd: {
      std::unique_ptr<InterestChange> change(static_cast<InterestChange*>(item.ptr));
      interest_.Add(change->filter, from_shard);
      InvalidateRoutes();
      shard::MailItem ack;
      ack.kind = kMailInterestAck;
      ack.arg = change->token;
      PostMail(from_shard, ack);
      break;
    }
    case kMailInterestRemove: {
      std::unique_ptr<InterestChange> change(static_cast<InterestChange*>(item.ptr));
      interest_.Remove(change->filter, from_shard);
      InvalidateRoutes();
      break;
    }
    case kMailInterestAck:
      SubackPartDone(item.arg);
      break;
    case kMailPausePublisher:
    case kMailResumePublisher: {
      std::unique_ptr<std::string> publisher(static_cast<std::string*>(item.ptr));
      ChangePublisherPause(*publisher, item.kind == kMailPausePublisher ? +1 : -1);
      break;
    }
    case kMailSharedPublish: {
      std::unique_ptr<SharedDelivery> delivery(static_cast<SharedDelivery*>(item.ptr));
      MessageRef message = MessageRef::Adopt(delivery->message);
      if (DeliverToLocalMember(message, delivery->group, nullptr)) break;
      // The members left while the mail travelled: try the shards that still
      // have some, a bounded number of times.
      if (delivery->hops >= shard_.shard_count() ||
          !DeliverShared(message, delivery->group, delivery->hops, nullptr)) {
        ShardStats::Inc(stats_.dropped_no_subscribers);
        NoteDropped({}, *message, DropReason::kNoSubscribers);
      }
      break;
    }
    case kMailSharedCount: {
      std::unique_ptr<SharedCount> count(static_cast<SharedCount*>(item.ptr));
      SetSharedCount(count->group, from_shard, count->members);
      break;
    }
    default:
      SHARDMQ_LOG(kError, "shard %d: unknown mail kind %d from shard %d", shard_.id(), item.kind,
                  from_shard);
  }
}

}  // namespace shardmq::broker
