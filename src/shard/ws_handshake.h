// The server side of the RFC 6455 opening handshake for MQTT over WebSocket.
//
// A pure function over the request bytes: it finds the end of the HTTP
// request, checks it and returns the response to send. No I/O, no state, so
// the unit tests feed it requests directly.
//
// Example:
//   WsHandshake h = ParseWsHandshake(bytes_so_far, "/mqtt");
//   if (h.status == WsHandshake::kIncomplete) wait for more bytes;
//   send h.response;  // "101 Switching Protocols" or "400 Bad Request"
//   if (h.status == WsHandshake::kAccepted) frames start at bytes_so_far[h.consumed];
#pragma once

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace shardmq::shard {

// The longest request we read before refusing it. Browsers send well under
// 2 KiB; the cap bounds what an unauthenticated peer makes us buffer.
inline constexpr size_t kMaxWsRequestBytes = 8 * 1024;

struct WsHandshake {
  enum Status { kIncomplete, kAccepted, kRejected };
  Status status = kIncomplete;
  // Bytes of the request (through the blank line); 0 unless kAccepted.
  size_t consumed = 0;
  // What to send: the 101 answer, or a 400 with the reason in its body.
  std::string response;
  // Why a request was rejected, for the log.
  std::string error;
};

// Checks the request in `bytes` (GET, HTTP/1.1, the path equals `path`
// ignoring a query string, Upgrade: websocket, Connection: upgrade,
// Sec-WebSocket-Version: 13, a Sec-WebSocket-Key of 16 base64 bytes, and the
// "mqtt" subprotocol, or "mqttv3.1" for MQTT 3.1 clients) and builds the
// answer. kIncomplete while the blank line has not arrived and the request is
// under kMaxWsRequestBytes.
WsHandshake ParseWsHandshake(absl::string_view bytes, absl::string_view path);

// Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + GUID)).
std::string WsAcceptKey(absl::string_view key);

}  // namespace shardmq::shard
