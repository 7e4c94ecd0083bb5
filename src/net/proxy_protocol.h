// The PROXY protocol (HAProxy, versions 1 and 2): the header a load balancer
// sends first on every connection it relays, naming the client's real address.
//
// A pure parser over bytes: no I/O, no allocation. Feed it everything read so
// far; it answers "need more" until the header is complete, then the client's
// source address and how many bytes the header took. The bytes after those are
// the client's own stream (a TLS ClientHello, an HTTP Upgrade, an MQTT
// CONNECT) and belong to the next layer.
//
//   ProxyHeaderResult r = ParseProxyHeader(buffered);
//   switch (r.status) {
//     case ProxyHeaderStatus::kNeedMore: keep reading (at most kMaxProxyHeaderLength bytes)
//     case ProxyHeaderStatus::kError:    close; r.error says why
//     case ProxyHeaderStatus::kDone:     r.has_source ? r.source : the socket's own peer,
//                                        then pass buffered[r.consumed..] on
//   }
//
// Accepted (https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt):
//   v1  "PROXY TCP4 <src> <dst> <sport> <dport>\r\n" (TCP6 likewise), and
//       "PROXY UNKNOWN<anything>\r\n"; at most 107 bytes, single spaces,
//       addresses of the named family, ports 0-65535 in plain decimal.
//   v2  the 12-byte signature, version 2, command LOCAL or PROXY, then
//       AF_INET/AF_INET6 over STREAM (TCP); AF_UNSPEC and AF_UNIX carry no
//       usable address. TLVs after the addresses are skipped (bounds-checked).
// The address is absent (has_source false: keep the socket's own peer) for
// LOCAL (the balancer's own health checks), UNKNOWN, AF_UNSPEC and AF_UNIX.
// Refused: anything else, including DGRAM (UDP) and unknown versions or
// commands.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/types/span.h"

namespace shardmq::net {

// v1: the spec's bound, "PROXY UNKNOWN" with two IPv6 addresses and CRLF.
inline constexpr size_t kMaxProxyV1Length = 107;
// v2: 16 fixed bytes and the address block with its TLVs. The protocol allows
// 64 KiB; balancers send well under 1 KiB, and a pending connection should not
// make us hold more than this.
inline constexpr size_t kMaxProxyV2PayloadLength = 4096;
inline constexpr size_t kMaxProxyHeaderLength = 16 + kMaxProxyV2PayloadLength;

enum class ProxyHeaderStatus : uint8_t { kNeedMore, kDone, kError };

struct ProxyHeaderResult {
  ProxyHeaderStatus status = ProxyHeaderStatus::kNeedMore;
  // kDone: the header's length; the client's stream starts right after it.
  size_t consumed = 0;
  // kDone: 1 or 2.
  int version = 0;
  // kDone: whether `source` holds the client's address (sockaddr_in or
  // sockaddr_in6, port included). False: use the socket's own peer.
  bool has_source = false;
  sockaddr_storage source{};
  socklen_t source_length = 0;
  // kError: why, for logs ("v1: bad source port"). Static text.
  std::string_view error;
};

// Parses the header at the start of `bytes`. Looks at no more than
// kMaxProxyHeaderLength bytes; kNeedMore means the bytes so far are a valid
// beginning of a header. consumed <= bytes.size() always.
ProxyHeaderResult ParseProxyHeader(absl::Span<const uint8_t> bytes);

}  // namespace shardmq::net
