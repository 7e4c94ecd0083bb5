// Parsing of listener addresses as users write them on the command line.
//
// Accepted forms: "host:port", "tcp://host:port", "tls://host:port",
// "[v6addr]:port", "tcp://[v6addr]:port", "tls://[v6addr]:port", and ":port" (all IPv4 interfaces).
// MQTT over WebSocket: "ws://host:port/path" and "wss://host:port/path" (over TLS); the path is
// what clients must request and defaults to "/mqtt".
// Unix-domain sockets: "unix:///absolute/path.sock" (plain MQTT, local clients only).
// Hosts are numeric addresses or "localhost"; names are not resolved, so start-up never waits on
// DNS. Port 0 asks the kernel for a free port.
//
// Per-listener options follow a '?', joined by '&' (the config file's [[listener]] tables
// are written this way for the parser):
//   proxy_protocol=true   every connection starts with a PROXY protocol v1 or v2 header
//                         (HAProxy, cloud load balancers); one without is refused
//   max_connections=N     connections open at once on this listener (0: only the global bound)
//   mode=0660             unix only: the socket file's permission bits (octal)
//   owner=user[:group]    unix only: the socket file's owner and group (names or numbers)
// e.g. "tcp://0.0.0.0:1883?proxy_protocol=true&max_connections=5000",
//      "unix:///run/shardmq/mqtt.sock?mode=0660&owner=mqtt:mqtt".
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace shardmq::net {

enum class Transport { kTcp, kTls, kWs, kWss, kUnix };

struct ListenAddress {
  Transport transport = Transport::kTcp;
  // The socket address to bind: sockaddr_in, sockaddr_in6 or (kUnix) sockaddr_un.
  sockaddr_storage address{};
  socklen_t address_length = 0;
  // kWs and kWss: the HTTP path of the Upgrade request ("/mqtt").
  // kUnix: the socket file's path.
  std::string path;
  // The options after '?'.
  bool proxy_protocol = false;
  uint32_t max_connections = 0;  // 0: only the broker-wide bound
  // kUnix: permission bits of the socket file (unset: the umask decides).
  std::optional<uint32_t> unix_mode;
  // kUnix: owner and group of the socket file, as written (empty: unchanged).
  std::string unix_owner;
  std::string unix_group;
  // The text the user wrote, for messages.
  std::string original;
};

// Whether the transport runs over TLS (tls://, wss://).
inline bool UsesTls(Transport t) { return t == Transport::kTls || t == Transport::kWss; }

// Parses one listener address. The error message quotes the text and says
// what is wrong with it, e.g. `"tcp://1.2.3:80": "1.2.3" is not an IPv4 or IPv6 address`.
absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view text);

// Whether only this machine can reach the address: 127.0.0.0/8, ::1, an
// IPv4-mapped 127.x ("[::ffff:127.0.0.1]"), or a unix socket. 0.0.0.0 and ::
// are not.
bool IsLoopback(const ListenAddress& address);

// The numeric host ("127.0.0.1", "::1") and port of a parsed IP address
// (not kUnix).
struct HostPort {
  std::string host;
  uint16_t port = 0;
};
HostPort NumericHostPort(const ListenAddress& address);

// Formats a socket address as "1.2.3.4:1883" or "[::1]:1883".
std::string FormatSocketAddress(const sockaddr* address, socklen_t length);

}  // namespace shardmq::net
