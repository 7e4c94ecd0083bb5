// ChallengeAuthenticator: an example of the MQTT 5 enhanced authentication
// hook (shardmq/auth.h), used by the daemon's --auth-method-demo flag and by
// the integration tests. It shows the shape of a challenge/response method; it
// is NOT a security feature (one shared secret for every client, given on the
// command line, no replay protection beyond a fresh nonce).
//
// Method "shardmq-challenge":
//   client  CONNECT  Authentication Method "shardmq-challenge" (data ignored)
//   server  AUTH 0x18 data = 16 random bytes (the nonce)
//   client  AUTH 0x18 data = lowercase hex of HMAC-SHA256(secret, nonce)
//   server  CONNACK 0x00 (or 0x87 not authorized when the answer is wrong)
// Re-authentication (AUTH 0x19) runs the same exchange and ends in AUTH 0x00
// or DISCONNECT 0x87.
//
// Threads: Begin() may run on several shards at once (it only reads the
// secret); each exchange is used on one shard.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/types/span.h"
#include "shardmq/auth.h"

namespace shardmq::auth {

inline constexpr std::string_view kChallengeMethod = "shardmq-challenge";

// Lowercase hex of HMAC-SHA256(secret, nonce): what the client must answer.
std::string ChallengeResponse(std::string_view secret, absl::Span<const uint8_t> nonce);

class ChallengeAuthenticator final : public EnhancedAuthenticator {
 public:
  explicit ChallengeAuthenticator(std::string secret) : secret_(std::move(secret)) {}

  std::vector<std::string> Methods() const override { return {std::string(kChallengeMethod)}; }
  std::unique_ptr<AuthExchange> Begin(const AuthRequest& request) override;

 private:
  const std::string secret_;
};

}  // namespace shardmq::auth
