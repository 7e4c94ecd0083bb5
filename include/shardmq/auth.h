// shardmq/auth.h: MQTT 5 enhanced authentication (MQTT 5 section 4.12), the
// hook an embedding program implements to run a challenge/response exchange
// (SCRAM, Kerberos, a token check, ...) inside CONNECT and on re-authentication.
//
// Example:
//   class TokenAuthenticator : public shardmq::EnhancedAuthenticator {
//    public:
//     std::vector<std::string> Methods() const override { return {"token"}; }
//     std::unique_ptr<shardmq::AuthExchange> Begin(
//         const shardmq::AuthRequest& request) override {
//       return std::make_unique<TokenExchange>();  // its Step() checks the token
//     }
//   };
//   options.authenticator = std::make_shared<TokenAuthenticator>();
//
// How the broker drives it: a v5 CONNECT (or a client's AUTH with reason 0x19,
// re-authenticate) names an Authentication Method. If no authenticator is set
// or Methods() does not list it, CONNECT is refused with CONNACK 0x8C (bad
// authentication method). Otherwise the broker calls Begin() and then Step()
// with the packet's Authentication Data; each kContinue result is sent to the
// client as AUTH 0x18 carrying `data`, and the client's AUTH 0x18 answer goes
// to the next Step(). kSuccess ends the exchange with CONNACK 0x00 (or, when
// re-authenticating, AUTH 0x00); kFail ends it with CONNACK (or DISCONNECT)
// carrying `reason_code`, and the connection is closed. The whole CONNECT-time
// exchange must finish within the broker's connect timeout.
//
// Threads: Methods() is called on every shard thread, possibly at the same
// time, and Begin() likewise (for different connections): both must be
// thread-safe. An AuthExchange belongs to one connection and is used only on
// that connection's shard thread, one call at a time, then destroyed there.
// Nothing here may block: these calls run on a shard's event loop, and a
// blocked shard stalls every client on it. An authenticator that needs a slow
// back end must answer from a cache or fail the exchange.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shardmq {

// One step's outcome. `data` becomes the Authentication Data property (absent
// when empty).
struct AuthStep {
  enum class Outcome : uint8_t {
    kContinue,  // send `data` in AUTH 0x18 and wait for the client's answer
    kSuccess,   // authenticated; `data` goes into CONNACK / AUTH 0x00
    kFail,      // refused with `reason_code`
  };
  Outcome outcome = Outcome::kFail;
  std::string data;
  // kFail only: an MQTT 5 reason code valid in both CONNACK and DISCONNECT,
  // e.g. 0x87 not authorized (the default) or 0x80 unspecified error.
  uint8_t reason_code = 0x87;
  // kFail only: a Reason String for the client (sent only if it asked for
  // problem information); empty for none.
  std::string reason;

  static AuthStep Continue(std::string data) {
    return {Outcome::kContinue, std::move(data), 0, {}};
  }
  static AuthStep Success(std::string data = {}) {
    return {Outcome::kSuccess, std::move(data), 0, {}};
  }
  static AuthStep Fail(uint8_t reason_code = 0x87, std::string reason = {}) {
    return {Outcome::kFail, {}, reason_code, std::move(reason)};
  }
};

// What the broker knows about the client when an exchange begins. The views
// are valid only during the Begin() call.
struct AuthRequest {
  std::string_view method;
  std::string_view client_id;  // as sent; empty if the broker will assign one
  // CONNECT's User Name; not kept for re-authentication, where it is absent.
  std::optional<std::string_view> username;
  // False for CONNECT, true for re-authentication of a connected client.
  bool reauthenticate = false;
  // On a TLS listener with --tls-ca: the verified client certificate's subject
  // CN (else its first DNS SAN); empty otherwise.
  std::string_view certificate_identity;
};

// The state of one exchange on one connection (a nonce, a SCRAM state ...).
class AuthExchange {
 public:
  virtual ~AuthExchange() = default;
  // Called first with the Authentication Data of CONNECT (or of AUTH 0x19),
  // then with that of each client AUTH 0x18; `data` is empty when the packet
  // had none, and valid only during the call.
  virtual AuthStep Step(std::string_view data) = 0;
};

class EnhancedAuthenticator {
 public:
  virtual ~EnhancedAuthenticator() = default;
  // The Authentication Method names this authenticator implements.
  virtual std::vector<std::string> Methods() const = 0;
  // Starts an exchange for `request.method`, one of Methods().
  virtual std::unique_ptr<AuthExchange> Begin(const AuthRequest& request) = 0;
};

}  // namespace shardmq
