#include "auth/challenge_authenticator.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "absl/strings/escaping.h"

namespace shardmq::auth {
namespace {

constexpr size_t kNonceBytes = 16;

class ChallengeExchange final : public AuthExchange {
 public:
  explicit ChallengeExchange(const std::string& secret) : secret_(secret) {}

  AuthStep Step(std::string_view data) override {
    if (!challenged_) {
      // First step (CONNECT or AUTH 0x19): whatever the client sent, challenge.
      nonce_.resize(kNonceBytes);
      if (RAND_bytes(nonce_.data(), static_cast<int>(nonce_.size())) != 1) {
        return AuthStep::Fail(0x80, "no random bytes for a nonce");
      }
      challenged_ = true;
      return AuthStep::Continue(std::string(nonce_.begin(), nonce_.end()));
    }
    const std::string expected = ChallengeResponse(secret_, nonce_);
    // Constant time, so the comparison leaks nothing about the expected answer.
    if (data.size() == expected.size() &&
        CRYPTO_memcmp(data.data(), expected.data(), expected.size()) == 0) {
      return AuthStep::Success();
    }
    return AuthStep::Fail(0x87, "wrong answer to the challenge");
  }

 private:
  const std::string& secret_;  // the authenticator's, which outlives the broker's use
  std::vector<uint8_t> nonce_;
  bool challenged_ = false;
};

}  // namespace

std::string ChallengeResponse(std::string_view secret, absl::Span<const uint8_t> nonce) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), nonce.data(), nonce.size(),
       digest, &length);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), length));
}

std::unique_ptr<AuthExchange> ChallengeAuthenticator::Begin(const AuthRequest&) {
  return std::make_unique<ChallengeExchange>(secret_);
}

}  // namespace shardmq::auth
