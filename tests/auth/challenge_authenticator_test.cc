#include "auth/challenge_authenticator.h"

#include <gtest/gtest.h>

#include <string>

namespace shardmq::auth {
namespace {

absl::Span<const uint8_t> Bytes(std::string_view text) {
  return absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

TEST(ChallengeResponseTest, MatchesRfc4231TestCase2) {
  // HMAC-SHA256 with key "Jefe" (RFC 4231 section 4.3).
  EXPECT_EQ(ChallengeResponse("Jefe", Bytes("what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(ChallengeAuthenticatorTest, OffersOneMethod) {
  ChallengeAuthenticator authenticator("s3cret");
  EXPECT_EQ(authenticator.Methods(), std::vector<std::string>{"shardmq-challenge"});
}

TEST(ChallengeAuthenticatorTest, RightAnswerSucceeds) {
  ChallengeAuthenticator authenticator("s3cret");
  auto exchange = authenticator.Begin({.method = kChallengeMethod, .client_id = "c"});
  AuthStep challenge = exchange->Step("");
  ASSERT_EQ(challenge.outcome, AuthStep::Outcome::kContinue);
  EXPECT_EQ(challenge.data.size(), 16u);
  AuthStep result = exchange->Step(ChallengeResponse("s3cret", Bytes(challenge.data)));
  EXPECT_EQ(result.outcome, AuthStep::Outcome::kSuccess);
}

TEST(ChallengeAuthenticatorTest, WrongAnswerFailsNotAuthorized) {
  ChallengeAuthenticator authenticator("s3cret");
  auto exchange = authenticator.Begin({.method = kChallengeMethod});
  AuthStep challenge = exchange->Step("client data is ignored");
  ASSERT_EQ(challenge.outcome, AuthStep::Outcome::kContinue);
  AuthStep result = exchange->Step(ChallengeResponse("other", Bytes(challenge.data)));
  EXPECT_EQ(result.outcome, AuthStep::Outcome::kFail);
  EXPECT_EQ(result.reason_code, 0x87);
  EXPECT_FALSE(result.reason.empty());
}

TEST(ChallengeAuthenticatorTest, EveryExchangeHasAFreshNonce) {
  ChallengeAuthenticator authenticator("s3cret");
  auto first = authenticator.Begin({.method = kChallengeMethod});
  auto second = authenticator.Begin({.method = kChallengeMethod});
  AuthStep a = first->Step("");
  AuthStep b = second->Step("");
  EXPECT_NE(a.data, b.data);
  // An answer to one nonce does not open the other exchange (no replay).
  EXPECT_EQ(second->Step(ChallengeResponse("s3cret", Bytes(a.data))).outcome,
            AuthStep::Outcome::kFail);
}

}  // namespace
}  // namespace shardmq::auth
