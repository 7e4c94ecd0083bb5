#include "shard/ws_handshake.h"

#include <openssl/evp.h>

#include <cstdint>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace shardmq::shard {
namespace {

constexpr absl::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

WsHandshake Reject(std::string error, absl::string_view extra_headers = {}) {
  WsHandshake h;
  h.status = WsHandshake::kRejected;
  const std::string body = error + "\n";
  h.response =
      absl::StrCat("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n", extra_headers,
                   "Content-Type: text/plain\r\nContent-Length: ", body.size(), "\r\n\r\n", body);
  h.error = std::move(error);
  return h;
}

// Whether the comma-separated header value lists `token` (case-insensitive).
bool HasToken(absl::string_view value, absl::string_view token) {
  for (absl::string_view part : absl::StrSplit(value, ',')) {
    if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(part), token)) return true;
  }
  return false;
}

// A valid key is 16 random bytes in base64: 24 characters ending in "==".
bool ValidKey(absl::string_view key) {
  if (key.size() != 24 || !absl::EndsWith(key, "==")) return false;
  uint8_t raw[18];
  return EVP_DecodeBlock(raw, reinterpret_cast<const unsigned char*>(key.data()), 24) == 18;
}

}  // namespace

std::string WsAcceptKey(absl::string_view key) {
  const std::string input = absl::StrCat(key, kGuid);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  EVP_Digest(input.data(), input.size(), digest, &digest_len, EVP_sha1(), nullptr);
  char out[64] = {};  // 20 bytes -> 28 characters + NUL
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out), digest, static_cast<int>(digest_len));
  return std::string(out, static_cast<size_t>(n));
}

WsHandshake ParseWsHandshake(absl::string_view bytes, absl::string_view path) {
  const size_t end = bytes.find("\r\n\r\n");
  if (end == absl::string_view::npos) {
    if (bytes.size() >= kMaxWsRequestBytes) return Reject("request header too large");
    return WsHandshake{};
  }
  if (end + 4 > kMaxWsRequestBytes) return Reject("request header too large");
  absl::string_view head = bytes.substr(0, end);

  const size_t line_end = head.find("\r\n");
  absl::string_view request_line = head.substr(0, line_end);
  std::vector<absl::string_view> parts = absl::StrSplit(request_line, ' ');
  if (parts.size() != 3 || parts[0] != "GET" || parts[2] != "HTTP/1.1") {
    return Reject("not an HTTP/1.1 GET request");
  }
  absl::string_view target = parts[1];
  target = target.substr(0, target.find('?'));
  if (target != path) return Reject(absl::StrCat("unknown path \"", target, "\""));

  absl::string_view upgrade, connection, key, version, protocols;
  bool has_protocols = false;
  if (line_end != absl::string_view::npos) {
    for (absl::string_view line : absl::StrSplit(head.substr(line_end + 2), "\r\n")) {
      const size_t colon = line.find(':');
      if (colon == absl::string_view::npos) return Reject("malformed header line");
      absl::string_view name = line.substr(0, colon);
      absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
      if (absl::EqualsIgnoreCase(name, "Upgrade")) {
        upgrade = value;
      } else if (absl::EqualsIgnoreCase(name, "Connection")) {
        connection = value;
      } else if (absl::EqualsIgnoreCase(name, "Sec-WebSocket-Key")) {
        key = value;
      } else if (absl::EqualsIgnoreCase(name, "Sec-WebSocket-Version")) {
        version = value;
      } else if (absl::EqualsIgnoreCase(name, "Sec-WebSocket-Protocol")) {
        // Clients may send the list in several header lines; the first
        // listing one we speak decides.
        if (!has_protocols || !(HasToken(protocols, "mqtt") || HasToken(protocols, "mqttv3.1"))) {
          protocols = value;
        }
        has_protocols = true;
      }
    }
  }
  if (!HasToken(upgrade, "websocket")) return Reject("missing \"Upgrade: websocket\"");
  if (!HasToken(connection, "upgrade")) return Reject("missing \"Connection: Upgrade\"");
  if (version != "13") {
    // RFC 6455 4.2.2: name the version we speak.
    return Reject("unsupported Sec-WebSocket-Version (13 only)", "Sec-WebSocket-Version: 13\r\n");
  }
  if (!ValidKey(key)) return Reject("missing or malformed Sec-WebSocket-Key");
  absl::string_view protocol;
  if (HasToken(protocols, "mqtt")) {
    protocol = "mqtt";
  } else if (HasToken(protocols, "mqttv3.1")) {
    protocol = "mqttv3.1";  // older MQTT 3.1 clients
  } else {
    return Reject("Sec-WebSocket-Protocol must offer \"mqtt\"");
  }

  WsHandshake h;
  h.status = WsHandshake::kAccepted;
  h.consumed = end + 4;
  h.response = absl::StrCat(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: ",
      WsAcceptKey(key), "\r\nSec-WebSocket-Protocol: ", protocol, "\r\n\r\n");
  return h;
}

}  // namespace shardmq::shard
