#include "net/listen_address.h"

#include <arpa/inet.h>
#include <sys/un.h>

#include <charconv>
#include <cstddef>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"

namespace shardmq::net {
namespace {

absl::Status Invalid(std::string_view text, std::string_view why) {
  return absl::InvalidArgumentError(absl::StrFormat("\"%s\": %s", text, why));
}

bool ParseUnsigned(std::string_view digits, int base, uint64_t max, uint64_t& out) {
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), out, base);
  return !digits.empty() && error == std::errc() && end == digits.data() + digits.size() &&
         out <= max;
}

// A user or group as written after owner=: a name or a number, no separators.
bool PlausibleAccountName(std::string_view name) {
  if (name.empty() || name.size() > 32) return false;
  for (char c : name) {
    if (!(absl::ascii_isalnum(c) || c == '_' || c == '-' || c == '.')) return false;
  }
  return true;
}

// The options after '?': key=value pairs joined by '&'.
absl::Status ParseOptions(std::string_view text, std::string_view query, ListenAddress& result) {
  while (true) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    size_t equals = pair.find('=');
    if (equals == std::string_view::npos) {
      return Invalid(text, absl::StrFormat("option \"%s\" has no value (write key=value)", pair));
    }
    std::string_view key = pair.substr(0, equals);
    std::string_view value = pair.substr(equals + 1);
    const bool unix_only = key == "mode" || key == "owner";
    if (unix_only && result.transport != Transport::kUnix) {
      return Invalid(text, absl::StrFormat("option \"%s\" is for unix:// listeners only", key));
    }
    if (key == "proxy_protocol") {
      if (value != "true" && value != "false") {
        return Invalid(text, absl::StrFormat("proxy_protocol=\"%s\": write true or false", value));
      }
      result.proxy_protocol = value == "true";
    } else if (key == "max_connections") {
      uint64_t n = 0;
      if (!ParseUnsigned(value, 10, 0xFFFFFFFF, n)) {
        return Invalid(text, absl::StrFormat("max_connections=\"%s\": not a number "
                                             "(0-4294967295; 0: no per-listener bound)",
                                             value));
      }
      result.max_connections = static_cast<uint32_t>(n);
    } else if (key == "mode") {
      uint64_t mode = 0;
      if (!ParseUnsigned(value, 8, 0777, mode)) {
        return Invalid(text, absl::StrFormat("mode=\"%s\": write octal permission bits, 0-0777 "
                                             "(e.g. 0660)",
                                             value));
      }
      result.unix_mode = static_cast<uint32_t>(mode);
    } else if (key == "owner") {
      std::string_view user = value;
      std::string_view group;
      if (size_t colon = value.find(':'); colon != std::string_view::npos) {
        user = value.substr(0, colon);
        group = value.substr(colon + 1);
      }
      if (!PlausibleAccountName(user) ||
          (value.find(':') != std::string_view::npos && !PlausibleAccountName(group))) {
        return Invalid(text, absl::StrFormat("owner=\"%s\": write user or user:group", value));
      }
      result.unix_owner = std::string(user);
      result.unix_group = std::string(group);
    } else {
      return Invalid(text, absl::StrFormat("unknown option \"%s\" (options: proxy_protocol, "
                                           "max_connections; for unix://: mode, owner)",
                                           key));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return absl::OkStatus();
}

absl::StatusOr<ListenAddress> ParseUnixAddress(std::string_view text, std::string_view path,
                                               ListenAddress& result) {
  auto* un = reinterpret_cast<sockaddr_un*>(&result.address);
  if (path.empty() || path.front() != '/') {
    return Invalid(text, "a unix socket path is absolute: unix:///path/to.sock");
  }
  if (path.size() >= sizeof(un->sun_path)) {
    return Invalid(text, absl::StrFormat("the path is longer than a unix socket allows (%d bytes)",
                                         sizeof(un->sun_path) - 1));
  }
  if (path.find('\0') != std::string_view::npos || path.back() == '/') {
    return Invalid(text, "not a file path");
  }
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path, path.data(), path.size());
  result.address_length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  result.path = std::string(path);
  return result;
}

}  // namespace

absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view text) {
  ListenAddress result;
  result.original = std::string(text);
  std::string_view rest = text;
  std::string_view query;
  const bool has_options = rest.find('?') != std::string_view::npos;
  if (has_options) {
    query = rest.substr(rest.find('?') + 1);
    rest = rest.substr(0, rest.find('?'));
  }
  if (size_t scheme_end = rest.find("://"); scheme_end != std::string_view::npos) {
    std::string_view scheme = rest.substr(0, scheme_end);
    if (scheme == "unix") {
      result.transport = Transport::kUnix;
      if (has_options) {
        if (absl::Status options = ParseOptions(text, query, result); !options.ok()) return options;
      }
      return ParseUnixAddress(text, rest.substr(scheme_end + 3), result);
    }
    if (scheme == "tls") {
      result.transport = Transport::kTls;
    } else if (scheme == "ws") {
      result.transport = Transport::kWs;
    } else if (scheme == "wss") {
      result.transport = Transport::kWss;
    } else if (scheme != "tcp") {
      return Invalid(
          text,
          absl::StrFormat("unknown scheme \"%s\" (supported: tcp, tls, ws, wss, unix)", scheme));
    }
    rest.remove_prefix(scheme_end + 3);
  }
  if (has_options) {
    if (absl::Status options = ParseOptions(text, query, result); !options.ok()) return options;
  }
  // The path starts at the first '/' after the port (IPv6 hosts hold none).
  if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
    if (result.transport != Transport::kWs && result.transport != Transport::kWss) {
      return Invalid(text, "only ws:// and wss:// addresses have a path");
    }
    result.path = std::string(rest.substr(slash));
    rest = rest.substr(0, slash);
    if (result.path.find_first_of("# \t") != std::string::npos) {
      return Invalid(text, absl::StrFormat("\"%s\" is not a plain path (no fragment or "
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
  if (address.transport == Transport::kUnix) return true;
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
  if (address->sa_family == AF_UNIX) {
    const auto* un = reinterpret_cast<const sockaddr_un*>(address);
    const size_t offset = offsetof(sockaddr_un, sun_path);
    // A client's end of a unix socket usually has no name.
    if (length <= offset || un->sun_path[0] == '\0') return "unix";
    return absl::StrFormat("unix:%s",
                           std::string_view(un->sun_path, strnlen(un->sun_path, length - offset)));
  }
  return "(unknown address family)";
}

}  // namespace shardmq::net
