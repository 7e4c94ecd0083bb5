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
            "\"udp://1.2.3.4:80\": unknown scheme \"udp\" (supported: tcp, tls, ws, wss)");
  EXPECT_EQ(RoundTrip("[::1]"), "\"[::1]\": an IPv6 address is written [address]:port");
}

TEST(ListenAddressTest, WebSocketAddressesCarryAPath) {
  auto ws = ParseListenAddress("ws://127.0.0.1:8080/mqtt");
  ASSERT_TRUE(ws.ok()) << ws.status();
  EXPECT_EQ(ws->transport, Transport::kWs);
  EXPECT_EQ(ws->path, "/mqtt");
  EXPECT_EQ(RoundTrip("ws://127.0.0.1:8080/mqtt"), "127.0.0.1:8080");

  auto wss = ParseListenAddress("wss://[::1]:8443/a/b");
  ASSERT_TRUE(wss.ok()) << wss.status();
  EXPECT_EQ(wss->transport, Transport::kWss);
  EXPECT_EQ(wss->path, "/a/b");
  EXPECT_TRUE(UsesTls(wss->transport));
  EXPECT_FALSE(UsesTls(ws->transport));

  auto bare = ParseListenAddress("ws://localhost:0");
  ASSERT_TRUE(bare.ok()) << bare.status();
  EXPECT_EQ(bare->path, "/mqtt");  // the usual default of MQTT over WebSocket
  EXPECT_TRUE(ParseListenAddress("tcp://127.0.0.1:1883")->path.empty());

  EXPECT_EQ(RoundTrip("tcp://1.2.3.4:80/mqtt"),
            "\"tcp://1.2.3.4:80/mqtt\": only ws:// and wss:// addresses have a path");
  EXPECT_EQ(RoundTrip("ws://1.2.3.4:80/mqtt?x=1"),
            "\"ws://1.2.3.4:80/mqtt?x=1\": \"/mqtt?x=1\" is not a plain path (no query, "
            "fragment or spaces)");
}

bool Loopback(std::string_view text) {
  auto parsed = ParseListenAddress(text);
  EXPECT_TRUE(parsed.ok()) << text;
  return parsed.ok() && IsLoopback(*parsed);
}

TEST(ListenAddressTest, LoopbackIsOnlyThisMachine) {
  EXPECT_TRUE(Loopback("127.0.0.1:1883"));
  EXPECT_TRUE(Loopback("tls://127.1.2.3:8883"));
  EXPECT_TRUE(Loopback("ws://127.0.0.1:8080/mqtt"));
  EXPECT_TRUE(Loopback("localhost:0"));
  EXPECT_TRUE(Loopback("[::1]:1883"));
  EXPECT_TRUE(Loopback("[::ffff:127.0.0.1]:1883"));
  EXPECT_FALSE(Loopback("0.0.0.0:1883"));
  EXPECT_FALSE(Loopback(":1883"));
  EXPECT_FALSE(Loopback("[::]:1883"));
  EXPECT_FALSE(Loopback("192.168.1.10:1883"));
  EXPECT_FALSE(Loopback("128.0.0.1:1883"));
  EXPECT_FALSE(Loopback("[::ffff:10.0.0.1]:1883"));
}

}  // namespace
}  // namespace shardmq::net
