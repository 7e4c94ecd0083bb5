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
            "\"udp://1.2.3.4:80\": unknown scheme \"udp\" (supported: tcp, tls, ws, wss, unix)");
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
  EXPECT_EQ(RoundTrip("ws://1.2.3.4:80/mqtt#x"),
            "\"ws://1.2.3.4:80/mqtt#x\": \"/mqtt#x\" is not a plain path (no fragment or "
            "spaces)");
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

TEST(ListenAddressTest, UnixSocketsTakeAnAbsolutePath) {
  auto unix_socket = ParseListenAddress("unix:///run/shardmq/mqtt.sock");
  ASSERT_TRUE(unix_socket.ok()) << unix_socket.status();
  EXPECT_EQ(unix_socket->transport, Transport::kUnix);
  EXPECT_EQ(unix_socket->path, "/run/shardmq/mqtt.sock");
  EXPECT_TRUE(IsLoopback(*unix_socket));
  EXPECT_EQ(RoundTrip("unix:///tmp/x.sock"), "unix:/tmp/x.sock");
  EXPECT_FALSE(unix_socket->unix_mode.has_value());

  EXPECT_EQ(RoundTrip("unix://x.sock"),
            "\"unix://x.sock\": a unix socket path is absolute: unix:///path/to.sock");
  EXPECT_EQ(RoundTrip("unix:///tmp/"), "\"unix:///tmp/\": not a file path");
  std::string too_long = "unix:///" + std::string(120, 'a');
  EXPECT_EQ(RoundTrip(too_long),
            "\"" + too_long + "\": the path is longer than a unix socket allows (107 bytes)");
}

TEST(ListenAddressTest, OptionsFollowAQuestionMark) {
  auto tcp = ParseListenAddress("tcp://0.0.0.0:1883?proxy_protocol=true&max_connections=5000");
  ASSERT_TRUE(tcp.ok()) << tcp.status();
  EXPECT_TRUE(tcp->proxy_protocol);
  EXPECT_EQ(tcp->max_connections, 5000u);
  EXPECT_EQ(RoundTrip("tcp://0.0.0.0:1883?proxy_protocol=true"), "0.0.0.0:1883");

  auto plain = ParseListenAddress("127.0.0.1:1883");
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->proxy_protocol);
  EXPECT_EQ(plain->max_connections, 0u);

  auto ws = ParseListenAddress("ws://[::1]:8080/mqtt?proxy_protocol=true");
  ASSERT_TRUE(ws.ok()) << ws.status();
  EXPECT_EQ(ws->path, "/mqtt");
  EXPECT_TRUE(ws->proxy_protocol);
  auto ws_default_path = ParseListenAddress("ws://[::1]:8080?max_connections=7");
  ASSERT_TRUE(ws_default_path.ok()) << ws_default_path.status();
  EXPECT_EQ(ws_default_path->path, "/mqtt");
  EXPECT_EQ(ws_default_path->max_connections, 7u);

  auto unix_socket = ParseListenAddress("unix:///run/m.sock?mode=0660&owner=mqtt:daemon");
  ASSERT_TRUE(unix_socket.ok()) << unix_socket.status();
  EXPECT_EQ(unix_socket->path, "/run/m.sock");
  EXPECT_EQ(unix_socket->unix_mode, 0660u);
  EXPECT_EQ(unix_socket->unix_owner, "mqtt");
  EXPECT_EQ(unix_socket->unix_group, "daemon");
  auto owner_only = ParseListenAddress("unix:///run/m.sock?owner=1000");
  ASSERT_TRUE(owner_only.ok()) << owner_only.status();
  EXPECT_EQ(owner_only->unix_owner, "1000");
  EXPECT_EQ(owner_only->unix_group, "");
}

TEST(ListenAddressTest, BadOptionsNameTheOptionAndValue) {
  EXPECT_EQ(RoundTrip("1.2.3.4:80?proxy_protocol=yes"),
            "\"1.2.3.4:80?proxy_protocol=yes\": proxy_protocol=\"yes\": write true or false");
  EXPECT_EQ(RoundTrip("1.2.3.4:80?max_connections=-1"),
            "\"1.2.3.4:80?max_connections=-1\": max_connections=\"-1\": not a number "
            "(0-4294967295; 0: no per-listener bound)");
  EXPECT_EQ(RoundTrip("1.2.3.4:80?mode=0660"),
            "\"1.2.3.4:80?mode=0660\": option \"mode\" is for unix:// listeners only");
  EXPECT_EQ(RoundTrip("unix:///a.sock?mode=0999"),
            "\"unix:///a.sock?mode=0999\": mode=\"0999\": write octal permission bits, 0-0777 "
            "(e.g. 0660)");
  EXPECT_EQ(RoundTrip("unix:///a.sock?owner=a:b:c"),
            "\"unix:///a.sock?owner=a:b:c\": owner=\"a:b:c\": write user or user:group");
  EXPECT_EQ(RoundTrip("1.2.3.4:80?colour=red"),
            "\"1.2.3.4:80?colour=red\": unknown option \"colour\" (options: proxy_protocol, "
            "max_connections; for unix://: mode, owner)");
  EXPECT_EQ(RoundTrip("1.2.3.4:80?"),
            "\"1.2.3.4:80?\": option \"\" has no value (write key=value)");
}

}  // namespace
}  // namespace shardmq::net
