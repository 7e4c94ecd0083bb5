#include "net/listen_address.h"

#include <gtest/gtest.h>

namespace shardmq::net {
namespace {

std::string RoundTrip(std::string_view text) {
  auto parsed = ParseListenAddress(text);
  if (!parsed.ok()) return std::string(parsed.status().message());
  return FormatSocketAddress(reinterpret_cast<const sockaddr*>(&parsed->address),
                             parsed->address_length);
}

TEST(ListenAddressTest, AcceptsTheFormsUsersWrite) {
  EXPECT_EQ(RoundTrip("127.0.0.1:1883"), "127.0.0.1:1883");
  EXPECT_EQ(RoundTrip("tcp://0.0.0.0:1883"), "0.0.0.0:1883");
  EXPECT_EQ(RoundTrip(":1884"), "0.0.0.0:1884");
  EXPECT_EQ(RoundTrip("localhost:0"), "127.0.0.1:0");
  EXPECT_EQ(RoundTrip("[::1]:1883"), "[::1]:1883");
  EXPECT_EQ(RoundTrip("tcp://[::]:8883"), "[::]:8883");
}

TEST(ListenAddressTest, RejectsBadInputWithAMessageThatQuotesIt) {
  EXPECT_EQ(RoundTrip("1.2.3.4"), "\"1.2.3.4\": missing \":port\"");
  EXPECT_EQ(RoundTrip("1.2.3.4:70000"),
            "\"1.2.3.4:70000\": \"70000\" is not a port number (0-65535)");
  EXPECT_EQ(RoundTrip("1.2.3.4:x"), "\"1.2.3.4:x\": \"x\" is not a port number (0-65535)");
  EXPECT_EQ(RoundTrip("1.2.3:80"), "\"1.2.3:80\": \"1.2.3\" is not an IPv4 or IPv6 address");
  EXPECT_EQ(RoundTrip("::1:80"), "\"::1:80\": an IPv6 address is written [address]:port");
  EXPECT_EQ(RoundTrip("udp://1.2.3.4:80"),
            "\"udp://1.2.3.4:80\": unknown scheme \"udp\" (supported: tcp, tls)");
  EXPECT_EQ(RoundTrip("[::1]"), "\"[::1]\": an IPv6 address is written [address]:port");
}

}  // namespace
}  // namespace shardmq::net
