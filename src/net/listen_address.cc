#include "net/listen_address.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace shardmq::net {
namespace {

absl::Status Invalid(std::string_view text, std::string_view why) {
  return absl::InvalidArgumentError(absl::StrFormat("\"%s\": %s", text, why));
}

}  // namespace

absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view text) {
  ListenAddress result;
  result.original = std::string(text);
  std::string_view rest = text;
  if (size_t scheme_end = rest.find("://"); scheme_end != std::string_view::npos) {
    std::string_view scheme = rest.substr(0, scheme_end);
    if (scheme == "tls") {
      result.transport = Transport::kTls;
    } else if (scheme == "ws") {
      result.transport = Transport::kWs;
    } else if (scheme == "wss") {
      result.transport = Transport::kWss;
    } else if (scheme != "tcp") {
      return Invalid(
          text, absl::StrFormat("unknown scheme \"%s\" (supported: tcp, tls, ws, wss)", scheme));
    }
    rest.remove_prefix(scheme_end + 3);
  }
  // The path starts at the first '/' after the port (IPv6 hosts hold none).
  if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
    if (result.transport != Transport::kWs && result.transport != Transport::kWss) {
      return Invalid(text, "only ws:// and wss:// addresses have a path");
    }
    result.path = std::string(rest.substr(slash));
    rest = rest.substr(0, slash);
    if (result.path.find_first_of("?# \t") != std::string::npos) {
      return Invalid(text, absl::StrFormat("\"%s\" is not a plain path (no query, fragment or "
                                           "spaces)",
                                           result.path));
    }
  } else if (result.transport == Transport::kWs || result.transport == Transport::kWss) {
    result.path = "/mqtt";
  }

  std::string_view host;
  std::string_view port_text;
  if (!rest.empty() && rest.front() == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      return Invalid(text, "an IPv6 address is written [address]:port");
    }
    host = rest.substr(1, close - 1);
    port_text = rest.substr(close + 2);
  } else {
    size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) {
      return Invalid(text, "missing \":port\"");
    }
    host = rest.substr(0, colon);
    port_text = rest.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return Invalid(text, "an IPv6 address is written [address]:port");
    }
  }

  unsigned port = 0;
  auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || error != std::errc() || end != port_text.data() + port_text.size() ||
      port > 65535) {
    return Invalid(text, absl::StrFormat("\"%s\" is not a port number (0-65535)", port_text));
  }

  std::string host_string(host.empty() ? "0.0.0.0" : host);
  if (host_string == "localhost") host_string = "127.0.0.1";
  auto* v4 = reinterpret_cast<sockaddr_in*>(&result.address);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&result.address);
  if (inet_pton(AF_INET, host_string.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    result.address_length = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host_string.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    result.address_length = sizeof(sockaddr_in6);
  } else {
    return Invalid(text, absl::StrFormat("\"%s\" is not an IPv4 or IPv6 address", host));
  }
  return result;
}

bool IsLoopback(const ListenAddress& address) {
  if (address.address.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address.address);
    return (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
  }
  if (address.address.ss_family == AF_INET6) {
    const in6_addr& v6 = reinterpret_cast<const sockaddr_in6*>(&address.address)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

HostPort NumericHostPort(const ListenAddress& address) {
  char host[INET6_ADDRSTRLEN] = {};
  if (address.address.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address.address);
    inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
    return {host, ntohs(v4->sin_port)};
  }
  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address.address);
  inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
  return {host, ntohs(v6->sin6_port)};
}

std::string FormatSocketAddress(const sockaddr* address, socklen_t length) {
  char host[INET6_ADDRSTRLEN] = {};
  if (address->sa_family == AF_INET && length >= sizeof(sockaddr_in)) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(address);
    inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
    return absl::StrFormat("%s:%d", host, ntohs(v4->sin_port));
  }
  if (address->sa_family == AF_INET6 && length >= sizeof(sockaddr_in6)) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(address);
    inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
    return absl::StrFormat("[%s]:%d", host, ntohs(v6->sin6_port));
  }
  return "(unknown address family)";
}

}  // namespace shardmq::net
