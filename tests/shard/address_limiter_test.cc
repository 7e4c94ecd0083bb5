#include "shard/address_limiter.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace shardmq::shard {
namespace {

constexpr int64_t kSecond = 1'000'000'000;
using Verdict = AddressLimiter::Verdict;

sockaddr_storage V4(const char* text, socklen_t* len) {
  sockaddr_storage ss{};
  auto& in = reinterpret_cast<sockaddr_in&>(ss);
  in.sin_family = AF_INET;
  inet_pton(AF_INET, text, &in.sin_addr);
  *len = sizeof(sockaddr_in);
  return ss;
}

sockaddr_storage V6(const char* text, socklen_t* len) {
  sockaddr_storage ss{};
  auto& in6 = reinterpret_cast<sockaddr_in6&>(ss);
  in6.sin6_family = AF_INET6;
  inet_pton(AF_INET6, text, &in6.sin6_addr);
  *len = sizeof(sockaddr_in6);
  return ss;
}

AddressLimiter::Key KeyV4(const AddressLimiter& limiter, const char* text) {
  socklen_t len;
  sockaddr_storage ss = V4(text, &len);
  return limiter.KeyOf(ss, len);
}

TEST(AddressLimiterTest, OffTracksNothing) {
  AddressLimiter limiter({});
  EXPECT_FALSE(limiter.enabled());
  EXPECT_EQ(KeyV4(limiter, "10.0.0.1"), AddressLimiter::kNoKey);
}

TEST(AddressLimiterTest, OpenConnectionsPerAddressAreCapped) {
  AddressLimiter limiter({.max_per_address = 3});
  const auto a = KeyV4(limiter, "10.0.0.1");
  const auto b = KeyV4(limiter, "10.0.0.2");
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limiter.Admit(a, 0), Verdict::kAdmit);
  EXPECT_EQ(limiter.Admit(a, 0), Verdict::kTooMany);
  // Another address is not affected.
  EXPECT_EQ(limiter.Admit(b, 0), Verdict::kAdmit);
  // A closed connection frees a place.
  limiter.Release(a, 0);
  EXPECT_EQ(limiter.Admit(a, 0), Verdict::kAdmit);
  EXPECT_EQ(limiter.Admit(a, 0), Verdict::kTooMany);
}

TEST(AddressLimiterTest, ConnectRateAllowsABurstThenTheRate) {
  AddressLimiter limiter({.connects_per_second = 5});
  const auto a = KeyV4(limiter, "192.0.2.7");
  const int64_t t0 = 50 * kSecond;
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(limiter.Admit(a, t0), Verdict::kAdmit) << i;
    limiter.Release(a, t0);  // closing does not give the rate back
  }
  EXPECT_EQ(limiter.Admit(a, t0), Verdict::kTooFast);
  EXPECT_EQ(limiter.Admit(a, t0 + kSecond / 5), Verdict::kAdmit);
  EXPECT_EQ(limiter.Admit(KeyV4(limiter, "192.0.2.8"), t0), Verdict::kAdmit);
}

TEST(AddressLimiterTest, NewOptionsApplyToTheNextAdmit) {
  AddressLimiter limiter({.max_per_address = 5});
  const auto a = KeyV4(limiter, "10.0.0.1");
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limiter.Admit(a, 0), Verdict::kAdmit);
  // Lowered below what the address holds: nobody is closed, nobody more let in.
  limiter.SetOptions({.max_per_address = 2});
  EXPECT_EQ(limiter.options().max_per_address, 2u);
  EXPECT_EQ(limiter.Admit(a, 0), Verdict::kTooMany);
  limiter.Release(a, 0);
  EXPECT_EQ(limiter.Admit(a, 0), Verdict::kTooMany);  // 2 open: at the bound
  limiter.Release(a, 0);
  EXPECT_EQ(limiter.Admit(a, 0), Verdict::kAdmit);
  // A rate set later holds for an address already known.
  limiter.SetOptions({.max_per_address = 0, .connects_per_second = 2});
  const int64_t t0 = 10 * kSecond;
  EXPECT_EQ(limiter.Admit(a, t0), Verdict::kAdmit);
  EXPECT_EQ(limiter.Admit(a, t0), Verdict::kAdmit);
  EXPECT_EQ(limiter.Admit(a, t0), Verdict::kTooFast);
  // Turned off: every socket untracked again.
  limiter.SetOptions({});
  EXPECT_FALSE(limiter.enabled());
  EXPECT_EQ(KeyV4(limiter, "10.0.0.1"), AddressLimiter::kNoKey);
}

TEST(AddressLimiterTest, MappedIpv4CountsAsIpv4AndIpv6IsWhole) {
  AddressLimiter limiter({.max_per_address = 1});
  socklen_t len;
  sockaddr_storage mapped = V6("::ffff:10.1.2.3", &len);
  EXPECT_EQ(limiter.KeyOf(mapped, len), KeyV4(limiter, "10.1.2.3"));
  sockaddr_storage a = V6("2001:db8::1", &len);
  sockaddr_storage b = V6("2001:db8::2", &len);
  EXPECT_NE(limiter.KeyOf(a, len), limiter.KeyOf(b, len));
  EXPECT_NE(limiter.KeyOf(a, len), AddressLimiter::kNoKey);
  EXPECT_EQ(limiter.Admit(limiter.KeyOf(a, len), 0), Verdict::kAdmit);
  EXPECT_EQ(limiter.Admit(limiter.KeyOf(b, len), 0), Verdict::kAdmit);
}

TEST(AddressLimiterTest, ForgetsAddressesOnceIdle) {
  AddressLimiter limiter({.max_per_address = 10, .connects_per_second = 100});
  // A scan from 100,000 addresses, each connecting once and closing.
  for (uint32_t i = 0; i < 100000; ++i) {
    const std::string ip = "10." + std::to_string(i >> 16) + "." + std::to_string((i >> 8) & 255) +
                           "." + std::to_string(i & 255);
    const auto key = KeyV4(limiter, ip.c_str());
    ASSERT_EQ(limiter.Admit(key, i * 1000), Verdict::kAdmit);
    limiter.Release(key, i * 1000);
  }
  // Each one's budget refills within 10 ms, so sweeping keeps at most about
  // one sweep threshold (1,024) per stripe (64), far under the 100,000 seen.
  EXPECT_LE(limiter.tracked_addresses(), 64u * 1024u);
}

TEST(AddressLimiterTest, AnAddressIsForgottenWhenItsLastConnectionCloses) {
  AddressLimiter limiter({.max_per_address = 10, .connects_per_second = 100});
  const auto a = KeyV4(limiter, "10.200.0.1");
  ASSERT_EQ(limiter.Admit(a, 1000 * kSecond), Verdict::kAdmit);
  ASSERT_EQ(limiter.Admit(a, 1000 * kSecond), Verdict::kAdmit);
  limiter.Release(a, 1001 * kSecond);
  EXPECT_EQ(limiter.tracked_addresses(), 1u);  // one still open
  limiter.Release(a, 1002 * kSecond);
  EXPECT_EQ(limiter.tracked_addresses(), 0u);
}

TEST(AddressLimiterTest, ShardsAdmittingAtOnceNeverExceedTheCap) {
  AddressLimiter limiter({.max_per_address = 100});
  const auto key = KeyV4(limiter, "10.9.9.9");
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (limiter.Admit(key, 0) == Verdict::kAdmit) admitted.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 100);
}

}  // namespace
}  // namespace shardmq::shard
