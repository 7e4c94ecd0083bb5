// MQTT 5 enhanced authentication (section 4.12): the AUTH exchange inside
// CONNECT and re-authentication of a connected client, driving the embedder's
// EnhancedAuthenticator (shardmq/auth.h).
//
// CONNECT-time: CONNECT names a method -> Step(CONNECT's data) -> AUTH 0x18
// out / AUTH 0x18 in ... -> CONNACK 0x00 with the method (or CONNACK with the
// failure code). Until CONNACK only AUTH and DISCONNECT are acceptable. The
// CONNECT bytes are kept and decoded again when the exchange succeeds: the
// decoded packet's views die with the read that carried it.
// Re-authentication: AUTH 0x19 with the same method -> ... -> AUTH 0x00, or
// DISCONNECT with the failure code [MQTT-4.12.1-2]; other packets keep flowing.
#include <algorithm>
#include <string>
#include <utility>

#include "base/log.h"
#include "broker/broker_shard.h"

namespace shardmq::broker {

struct AuthState {
  std::string method;
  // The exchange in progress; nullptr between exchanges.
  std::unique_ptr<AuthExchange> exchange;
  // CONNECT-time only: the CONNECT packet, decoded again on success.
  std::string connect_bytes;
  // The Authentication Data of the successful step, for CONNACK.
  std::string success_data;
};

Connection::Connection(const mqtt::DecodeOptions& options, mqtt::Packet* scratch)
    : decoder(options, scratch) {}

Connection::~Connection() = default;

Connection::Extras::Extras() = default;
Connection::Extras::~Extras() = default;

std::string_view AuthMethodOf(const Connection& conn) {
  return conn.auth() != nullptr ? std::string_view(conn.auth()->method) : std::string_view();
}

namespace {

std::string_view AsText(absl::Span<const uint8_t> bytes) {
  return std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

std::string_view AuthData(const mqtt::Properties& properties) {
  return properties.authentication_data ? AsText(*properties.authentication_data)
                                        : std::string_view();
}

// An authenticator's failure code, kept to codes a client can be sent.
mqtt::ReasonCode FailureCode(const AuthStep& step) {
  return step.reason_code >= 0x80 ? static_cast<mqtt::ReasonCode>(step.reason_code)
                                  : mqtt::ReasonCode::kNotAuthorized;
}

}  // namespace

BrokerShard::AuthProgress BrokerShard::BeginConnectAuth(Connection& conn,
                                                        const mqtt::Connect& connect,
                                                        absl::Span<const uint8_t> connect_bytes) {
  conn.version = connect.version;
  conn.problem_information = connect.properties.request_problem_information.value_or(1) != 0;
  const std::string_view method = *connect.properties.authentication_method;
  if (std::find(auth_methods_.begin(), auth_methods_.end(), method) == auth_methods_.end()) {
    ShardStats::Inc(stats_.auth_failures);
    SHARDMQ_LOG(kDebug, "refusing %s: unknown authentication method \"%s\"", conn.Peer(), method);
    ConnackAndClose(conn, connect.version, mqtt::ReasonCode::kBadAuthenticationMethod);
    return AuthProgress::kClosed;
  }
  AuthState& auth = *(conn.Extra().auth = std::make_unique<AuthState>());
  auth.method = std::string(method);
  AuthRequest request;
  request.method = method;
  request.client_id = connect.client_id;
  request.username = connect.username;
  const std::string identity = shard_.TlsPeerIdentity(conn.id);
  request.certificate_identity = identity;
  // RefuseWithoutCertificate made sure there is one.
  if (IdentityIsUsername(conn)) request.username = identity;
  auth.exchange = context_.authenticator->Begin(request);
  AuthStep step = auth.exchange != nullptr
                      ? auth.exchange->Step(AuthData(connect.properties))
                      : AuthStep::Fail(0x80, "authenticator declined to begin");
  switch (step.outcome) {
    case AuthStep::Outcome::kSuccess:
      auth.exchange.reset();
      auth.success_data = std::move(step.data);
      return AuthProgress::kProceed;
    case AuthStep::Outcome::kContinue:
      auth.connect_bytes = std::string(AsText(connect_bytes));
      conn.state = Connection::State::kAuthenticating;
      conn.decoder.set_protocol_version(connect.version);
      SendAuth(conn, mqtt::ReasonCode::kContinueAuthentication, step.data);
      return AuthProgress::kWait;
    case AuthStep::Outcome::kFail:
      break;
  }
  ShardStats::Inc(stats_.auth_failures);
  mqtt::Properties properties;
  if (conn.problem_information && !step.reason.empty()) properties.reason_string = step.reason;
  ConnackAndClose(conn, connect.version, FailureCode(step), properties);
  return AuthProgress::kClosed;
}

bool BrokerShard::HandlePacketWhileAuthenticating(Connection& conn, const mqtt::Packet& packet) {
  conn.last_packet = shard_.Now();
  switch (mqtt::GetPacketType(packet)) {
    case mqtt::PacketType::kAuth:
      HandleAuth(conn, std::get<mqtt::Auth>(packet));
      break;
    case mqtt::PacketType::kDisconnect:
      // The client gives up; there is no session and no will yet.
      conn.state = Connection::State::kClosing;
      shard_.Close(conn.id);
      break;
    default:
      // Only AUTH (and DISCONNECT) before CONNACK (section 4.12).
      ProtocolClose(conn, mqtt::ReasonCode::kProtocolError,
                    "packet other than AUTH during authentication");
      break;
  }
  return conn.state != Connection::State::kClosing;
}

void BrokerShard::HandleAuth(Connection& conn, const mqtt::Auth& auth) {
  if (conn.auth() == nullptr) {
    // No method at CONNECT, so no AUTH ever [MQTT-4.12.0-6].
    ProtocolClose(conn, mqtt::ReasonCode::kProtocolError,
                  "AUTH without an Authentication Method in CONNECT");
    return;
  }
  AuthState& state = *conn.auth();
  const std::optional<std::string_view>& method = auth.properties.authentication_method;
  if (!method.has_value() || *method != state.method) {
    // The method never changes within a connection (sections 4.12, 4.12.1).
    ProtocolClose(conn, mqtt::ReasonCode::kProtocolError,
                  "AUTH with another Authentication Method");
    return;
  }
  const bool connecting = conn.state == Connection::State::kAuthenticating;
  if (auth.reason_code == mqtt::ReasonCode::kReAuthenticate && !connecting &&
      state.exchange == nullptr) {
    AuthRequest request;
    request.method = state.method;
    request.client_id = conn.session != nullptr ? conn.session->client_id : std::string_view();
    request.reauthenticate = true;
    const std::string identity = shard_.TlsPeerIdentity(conn.id);
    request.certificate_identity = identity;
    state.exchange = context_.authenticator->Begin(request);
    if (state.exchange == nullptr) {
      DisconnectAndClose(conn, mqtt::ReasonCode::kUnspecifiedError,
                         "authenticator declined to begin");
      return;
    }
  } else if (auth.reason_code != mqtt::ReasonCode::kContinueAuthentication ||
             state.exchange == nullptr) {
    ProtocolClose(
        conn, mqtt::ReasonCode::kProtocolError,
        connecting ? "AUTH before CONNACK must continue the exchange (0x18)" : "AUTH out of turn");
    return;
  }

  AuthStep step = state.exchange->Step(AuthData(auth.properties));
  switch (step.outcome) {
    case AuthStep::Outcome::kContinue:
      SendAuth(conn, mqtt::ReasonCode::kContinueAuthentication, step.data);
      return;
    case AuthStep::Outcome::kSuccess: {
      state.exchange.reset();
      if (!connecting) {
        SendAuth(conn, mqtt::ReasonCode::kSuccess, step.data);
        return;
      }
      state.success_data = std::move(step.data);
      // Decode the kept CONNECT again (the decoder's scratch holds this AUTH
      // packet, so a packet of our own) and carry on as if it had just come.
      std::string bytes = std::move(state.connect_bytes);
      mqtt::Packet packet;
      mqtt::DecodeResult result = mqtt::DecodePacket(
          absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()),
          decode_options_, &packet);
      if (result.status != mqtt::DecodeStatus::kOk) {
        // It decoded once already; this is a bug, not the client's fault.
        ProtocolClose(conn, mqtt::ReasonCode::kImplementationSpecificError,
                      "CONNECT no longer decodes");
        return;
      }
      HandleConnect(
          conn, std::get<mqtt::Connect>(packet),
          absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
      return;
    }
    case AuthStep::Outcome::kFail:
      break;
  }
  ShardStats::Inc(stats_.auth_failures);
  // (Before CONNACK DisconnectAndClose answers with CONNACK, and drops the
  // Reason String if the client asked for no problem information.)
  const std::string reason = step.reason.empty() ? "authentication failed" : step.reason;
  DisconnectAndClose(conn, FailureCode(step), reason);
}

void BrokerShard::SendAuth(Connection& conn, mqtt::ReasonCode reason, std::string_view data) {
  mqtt::Auth auth;
  auth.reason_code = reason;
  auth.properties.authentication_method = conn.auth()->method;
  if (!data.empty()) {
    auth.properties.authentication_data =
        absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()), data.size());
  }
  // AUTH never carries a Reason String or User Property here, so Request
  // Problem Information = 0 [MQTT-3.1.2-29] holds without stripping.
  SendPacket(conn, auth);
}

void BrokerShard::AddAuthToConnack(const Connection& conn, mqtt::Properties* properties) {
  properties->authentication_method = conn.auth()->method;
  if (!conn.auth()->success_data.empty()) {
    const std::string& data = conn.auth()->success_data;
    properties->authentication_data =
        absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()), data.size());
  }
}

}  // namespace shardmq::broker
