// Parsing of listener addresses as users write them on the command line.
//
// Accepted forms: "host:port", "tcp://host:port", "tls://host:port",
// "[v6addr]:port", "tcp://[v6addr]:port", "tls://[v6addr]:port", and ":port" (all IPv4 interfaces).
// MQTT over WebSocket: "ws://host:port/path" and "wss://host:port/path" (over TLS); the path is
// what clients must request and defaults to "/mqtt".
// Hosts are numeric addresses or "localhost"; names are not resolved, so start-up never waits on
// DNS. Port 0 asks the kernel for a free port.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace shardmq::net {

enum class Transport { kTcp, kTls, kWs, kWss };

struct ListenAddress {
  Transport transport = Transport::kTcp;
  // The socket address to bind: sockaddr_in or sockaddr_in6.
  sockaddr_storage address{};
  socklen_t address_length = 0;
  // kWs and kWss: the HTTP path of the Upgrade request ("/mqtt").
  std::string path;
  // The text the user wrote, for messages.
  std::string original;
};

// Whether the transport runs over TLS (tls://, wss://).
inline bool UsesTls(Transport t) { return t == Transport::kTls || t == Transport::kWss; }

// Parses one listener address. The error message quotes the text and says
// what is wrong with it, e.g. `"tcp://1.2.3:80": "1.2.3" is not an IPv4 or IPv6 address`.
absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view text);

// Whether only this machine can reach the address: 127.0.0.0/8, ::1, or
// an IPv4-mapped 127.x ("[::ffff:127.0.0.1]"). 0.0.0.0 and :: are not.
bool IsLoopback(const ListenAddress& address);

// The numeric host ("127.0.0.1", "::1") and port of a parsed address.
struct HostPort {
  std::string host;
  uint16_t port = 0;
};
HostPort NumericHostPort(const ListenAddress& address);

// Formats a socket address as "1.2.3.4:1883" or "[::1]:1883".
std::string FormatSocketAddress(const sockaddr* address, socklen_t length);

}  // namespace shardmq::net
