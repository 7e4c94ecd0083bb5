#include "net/proxy_protocol.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace shardmq::net {
namespace {

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr uint8_t kV2Signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                      0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr size_t kV2FixedLength = 16;
// v2 address block sizes: two addresses and two ports.
constexpr size_t kV2Inet4Length = 12;
constexpr size_t kV2Inet6Length = 36;
constexpr size_t kV2UnixLength = 216;

ProxyHeaderResult Error(std::string_view why) {
  ProxyHeaderResult r;
  r.status = ProxyHeaderStatus::kError;
  r.error = why;
  return r;
}

ProxyHeaderResult NeedMore() { return ProxyHeaderResult{}; }

ProxyHeaderResult Done(int version, size_t consumed) {
  ProxyHeaderResult r;
  r.status = ProxyHeaderStatus::kDone;
  r.version = version;
  r.consumed = consumed;
  return r;
}

// Whether `bytes` and `prefix` agree on their common length.
bool StartsLike(absl::Span<const uint8_t> bytes, absl::Span<const uint8_t> prefix) {
  const size_t n = std::min(bytes.size(), prefix.size());
  return std::memcmp(bytes.data(), prefix.data(), n) == 0;
}

absl::Span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// ---- v1 ------------------------------------------------------------------

// Plain decimal 0-65535: digits only, no sign, no leading zero.
bool ParseV1Port(std::string_view s, uint16_t* port) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v > 65535) return false;
  *port = static_cast<uint16_t>(v);
  return true;
}

// inet_pton of a field (not NUL-terminated); false unless it is an address
// of `family`.
bool ParseV1Address(std::string_view s, int family, void* out) {
  char text[INET6_ADDRSTRLEN] = {};
  if (s.empty() || s.size() >= sizeof(text)) return false;
  std::memcpy(text, s.data(), s.size());
  return inet_pton(family, text, out) == 1;
}

// Splits "a b c" at single spaces into at most `max` fields; false for an
// empty field (two spaces, a leading or trailing one) or too many fields.
bool SplitV1(std::string_view line, std::string_view* fields, size_t max, size_t* count) {
  *count = 0;
  size_t start = 0;
  for (;;) {
    const size_t space = line.find(' ', start);
    const std::string_view field = line.substr(start, space - start);
    if (field.empty() || *count == max) return false;
    fields[(*count)++] = field;
    if (space == std::string_view::npos) return true;
    start = space + 1;
  }
}

// `line`: the text between "PROXY " and CRLF.
ProxyHeaderResult ParseV1Line(std::string_view line, size_t consumed) {
  // UNKNOWN: the balancer could not tell; whatever follows is ignored.
  if (line == "UNKNOWN" || line.starts_with("UNKNOWN ")) return Done(1, consumed);
  std::string_view f[5];
  size_t n = 0;
  if (!SplitV1(line, f, 5, &n) || n != 5) {
    return Error("v1: expected \"TCP4|TCP6 <src> <dst> <sport> <dport>\" with single spaces");
  }
  uint16_t sport = 0;
  uint16_t dport = 0;
  if (!ParseV1Port(f[3], &sport)) return Error("v1: bad source port");
  if (!ParseV1Port(f[4], &dport)) return Error("v1: bad destination port");
  ProxyHeaderResult r = Done(1, consumed);
  if (f[0] == "TCP4") {
    auto* a = reinterpret_cast<sockaddr_in*>(&r.source);
    in_addr dst{};
    if (!ParseV1Address(f[1], AF_INET, &a->sin_addr)) return Error("v1: bad IPv4 source address");
    if (!ParseV1Address(f[2], AF_INET, &dst)) return Error("v1: bad IPv4 destination address");
    a->sin_family = AF_INET;
    a->sin_port = htons(sport);
    r.source_length = sizeof(sockaddr_in);
  } else if (f[0] == "TCP6") {
    auto* a = reinterpret_cast<sockaddr_in6*>(&r.source);
    in6_addr dst{};
    if (!ParseV1Address(f[1], AF_INET6, &a->sin6_addr)) {
      return Error("v1: bad IPv6 source address");
    }
    if (!ParseV1Address(f[2], AF_INET6, &dst)) return Error("v1: bad IPv6 destination address");
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(sport);
    r.source_length = sizeof(sockaddr_in6);
  } else {
    return Error("v1: protocol is not TCP4, TCP6 or UNKNOWN");
  }
  r.has_source = true;
  return r;
}

ProxyHeaderResult ParseV1(absl::Span<const uint8_t> bytes) {
  if (!StartsLike(bytes, AsBytes(kV1Prefix))) return Error("v1: does not start with \"PROXY \"");
  const size_t limit = std::min(bytes.size(), kMaxProxyV1Length);
  for (size_t i = 0; i < limit; ++i) {
    const uint8_t c = bytes[i];
    if (c == '\n') return Error("v1: line feed without carriage return");
    if (c != '\r') continue;
    if (i + 2 > kMaxProxyV1Length) break;
    if (i + 1 == bytes.size()) return NeedMore();
    if (bytes[i + 1] != '\n') return Error("v1: carriage return without line feed");
    const std::string_view line(reinterpret_cast<const char*>(bytes.data()) + kV1Prefix.size(),
                                i - kV1Prefix.size());
    return ParseV1Line(line, i + 2);
  }
  if (bytes.size() < kMaxProxyV1Length) return NeedMore();
  return Error("v1: no CRLF within 107 bytes");
}

// ---- v2 ------------------------------------------------------------------

uint16_t Load16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

// TLVs (type, 16-bit length, value) fill [pos, end); each must fit.
bool TlvsFit(absl::Span<const uint8_t> bytes, size_t pos, size_t end) {
  while (pos < end) {
    if (end - pos < 3) return false;
    const size_t length = Load16(&bytes[pos + 1]);
    if (end - pos - 3 < length) return false;
    pos += 3 + length;
  }
  return true;
}

// A PROXY command's address block, `payload` bytes after the fixed 16.
ProxyHeaderResult ParseV2Addresses(absl::Span<const uint8_t> bytes, size_t payload) {
  const uint8_t family = bytes[13] >> 4;
  const uint8_t transport = bytes[13] & 0x0F;
  const size_t total = kV2FixedLength + payload;
  if (transport == 2) return Error("v2: DGRAM (UDP) is not served");
  if (transport > 2) return Error("v2: unknown transport");
  ProxyHeaderResult r = Done(2, total);
  size_t addresses = 0;
  switch (family) {
    case 0:  // AF_UNSPEC: nothing to learn, the block is ignored
      return r;
    case 1:    // AF_INET
    case 2: {  // AF_INET6
      if (transport != 1) return Error("v2: an IP address family needs STREAM");
      addresses = family == 1 ? kV2Inet4Length : kV2Inet6Length;
      if (payload < addresses) return Error("v2: address block too short for its family");
      const uint8_t* src = &bytes[kV2FixedLength];
      if (family == 1) {
        auto* a = reinterpret_cast<sockaddr_in*>(&r.source);
        a->sin_family = AF_INET;
        std::memcpy(&a->sin_addr, src, 4);
        std::memcpy(&a->sin_port, src + 8, 2);  // both in network order
        r.source_length = sizeof(sockaddr_in);
      } else {
        auto* a = reinterpret_cast<sockaddr_in6*>(&r.source);
        a->sin6_family = AF_INET6;
        std::memcpy(&a->sin6_addr, src, 16);
        std::memcpy(&a->sin6_port, src + 32, 2);
        r.source_length = sizeof(sockaddr_in6);
      }
      r.has_source = true;
      break;
    }
    case 3:  // AF_UNIX: a path is no address we can use
      addresses = kV2UnixLength;
      if (payload < addresses) return Error("v2: address block too short for its family");
      break;
    default:
      return Error("v2: unknown address family");
  }
  if (!TlvsFit(bytes, kV2FixedLength + addresses, total)) return Error("v2: malformed TLV");
  return r;
}

ProxyHeaderResult ParseV2(absl::Span<const uint8_t> bytes) {
  if (!StartsLike(bytes, kV2Signature)) return Error("v2: bad signature");
  if (bytes.size() <= sizeof(kV2Signature)) return NeedMore();
  const uint8_t version = bytes[12] >> 4;
  const uint8_t command = bytes[12] & 0x0F;
  if (version != 2) return Error("v2: version is not 2");
  if (command > 1) return Error("v2: command is not LOCAL or PROXY");
  if (bytes.size() < kV2FixedLength) return NeedMore();
  const size_t payload = Load16(&bytes[14]);
  if (payload > kMaxProxyV2PayloadLength) return Error("v2: header longer than 4 KiB");
  if (bytes.size() < kV2FixedLength + payload) return NeedMore();
  // LOCAL: the balancer's own connection (a health check); the spec says to
  // ignore the block and keep the socket's endpoints.
  if (command == 0) return Done(2, kV2FixedLength + payload);
  return ParseV2Addresses(bytes, payload);
}

}  // namespace

ProxyHeaderResult ParseProxyHeader(absl::Span<const uint8_t> bytes) {
  if (bytes.empty()) return NeedMore();
  if (bytes[0] == kV2Signature[0]) return ParseV2(bytes);
  return ParseV1(bytes);
}

}  // namespace shardmq::net
