// The RFC 6455 opening handshake: what is accepted, what is refused (HTTP
// 400), and the Sec-WebSocket-Accept computation.
#include "shard/ws_handshake.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace shardmq::shard {
namespace {

// The RFC's own example key (section 1.3).
constexpr char kKey[] = "dGhlIHNhbXBsZSBub25jZQ==";

std::string Request(absl::string_view path = "/mqtt", absl::string_view extra = "",
                    absl::string_view protocol = "mqtt", absl::string_view version = "13",
                    absl::string_view key = kKey) {
  return absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n",
                      "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: ", key,
                      "\r\nSec-WebSocket-Version: ", version,
                      "\r\nSec-WebSocket-Protocol: ", protocol, "\r\n", extra, "\r\n");
}

TEST(WsHandshakeTest, AcceptKeyMatchesTheRfcExample) {
  EXPECT_EQ(WsAcceptKey(kKey), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WsHandshakeTest, AcceptsAWellFormedRequestAndEchoesMqtt) {
  const std::string request = Request() + "\x10\x0c";  // frame bytes may follow
  WsHandshake h = ParseWsHandshake(request, "/mqtt");
  ASSERT_EQ(h.status, WsHandshake::kAccepted) << h.error;
  EXPECT_EQ(h.consumed, request.size() - 2);
  EXPECT_TRUE(absl::StartsWith(h.response, "HTTP/1.1 101 Switching Protocols\r\n"));
  EXPECT_TRUE(
      absl::StrContains(h.response, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
  EXPECT_TRUE(absl::StrContains(h.response, "Sec-WebSocket-Protocol: mqtt\r\n"));
  EXPECT_TRUE(absl::EndsWith(h.response, "\r\n\r\n"));
}

TEST(WsHandshakeTest, HeaderNamesAreCaseInsensitiveAndQueriesIgnored) {
  std::string request = absl::StrCat(
      "GET /ws?token=1 HTTP/1.1\r\nhost: x\r\nUPGRADE: WebSocket\r\nconnection: upgrade\r\n"
      "sec-websocket-key: ",
      kKey, "\r\nsec-websocket-version: 13\r\nsec-websocket-protocol: mqttv3.1, mqtt\r\n\r\n");
  WsHandshake h = ParseWsHandshake(request, "/ws");
  ASSERT_EQ(h.status, WsHandshake::kAccepted) << h.error;
  EXPECT_TRUE(absl::StrContains(h.response, "Sec-WebSocket-Protocol: mqtt\r\n"));
}

TEST(WsHandshakeTest, Mqtt31ClientsGetTheirSubprotocol) {
  WsHandshake h = ParseWsHandshake(Request("/mqtt", "", "mqttv3.1"), "/mqtt");
  ASSERT_EQ(h.status, WsHandshake::kAccepted) << h.error;
  EXPECT_TRUE(absl::StrContains(h.response, "Sec-WebSocket-Protocol: mqttv3.1\r\n"));
}

TEST(WsHandshakeTest, WaitsForTheBlankLine) {
  const std::string request = Request();
  for (size_t n = 0; n + 1 < request.size(); n += 7) {
    EXPECT_EQ(ParseWsHandshake(request.substr(0, n), "/mqtt").status, WsHandshake::kIncomplete)
        << n;
  }
}

void ExpectRejected(const std::string& request, absl::string_view why) {
  WsHandshake h = ParseWsHandshake(request, "/mqtt");
  ASSERT_EQ(h.status, WsHandshake::kRejected) << request;
  EXPECT_TRUE(absl::StartsWith(h.response, "HTTP/1.1 400 Bad Request\r\n")) << h.response;
  EXPECT_TRUE(absl::StrContains(h.error, why)) << h.error;
  EXPECT_EQ(h.consumed, 0u);
}

TEST(WsHandshakeTest, RefusesBadRequestsWith400) {
  ExpectRejected(Request("/other"), "unknown path \"/other\"");
  ExpectRejected(Request("/mqtt", "", "chat"), "must offer \"mqtt\"");
  ExpectRejected(Request("/mqtt", "", "mqtt", "8"), "Sec-WebSocket-Version");
  ExpectRejected(Request("/mqtt", "", "mqtt", "13", "short"), "Sec-WebSocket-Key");
  ExpectRejected(Request("/mqtt", "", "mqtt", "13", "dGhlIHNhbXBsZSBub25j!!=="),
                 "Sec-WebSocket-Key");
  ExpectRejected("POST /mqtt HTTP/1.1\r\nHost: x\r\n\r\n", "GET");
  ExpectRejected("GET /mqtt HTTP/1.0\r\nHost: x\r\n\r\n", "GET");
  ExpectRejected(absl::StrCat("GET /mqtt HTTP/1.1\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ",
                              kKey, "\r\nSec-WebSocket-Version: 13\r\n\r\n"),
                 "Upgrade: websocket");
  ExpectRejected("GET /mqtt HTTP/1.1\r\nno colon here\r\n\r\n", "malformed header");
  // Plain MQTT on a WebSocket port: no blank line ever comes, the cap ends it.
  ExpectRejected(std::string(kMaxWsRequestBytes, '\x10'), "too large");
  ExpectRejected(Request("/mqtt", "X-Pad: " + std::string(kMaxWsRequestBytes, 'a') + "\r\n"),
                 "too large");
}

TEST(WsHandshakeTest, VersionRefusalNamesTheVersionWeSpeak) {
  WsHandshake h = ParseWsHandshake(Request("/mqtt", "", "mqtt", "8"), "/mqtt");
  EXPECT_TRUE(absl::StrContains(h.response, "Sec-WebSocket-Version: 13\r\n"));
}

}  // namespace
}  // namespace shardmq::shard
