// libFuzzer target for the PROXY protocol header parser (net/proxy_protocol.h).
// Input: the first bytes a load balancer (or anyone) sends on a proxy listener.
// Checks, aborting on any mismatch:
//  1. consumed <= size, and kDone consumes at least one byte and at most the
//     spec's bounds (107 bytes for v1, kMaxProxyHeaderLength for v2);
//  2. reading split across receives gives the same answer: every prefix
//     shorter than a complete header needs more, every longer input gives the
//     same header, and once a prefix is refused every longer one is too;
//  3. a source address, when present, is a whole sockaddr_in or sockaddr_in6.
#include <netinet/in.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "net/proxy_protocol.h"

namespace {

using shardmq::net::kMaxProxyHeaderLength;
using shardmq::net::kMaxProxyV1Length;
using shardmq::net::ParseProxyHeader;
using shardmq::net::ProxyHeaderResult;
using shardmq::net::ProxyHeaderStatus;

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "proxy_protocol_fuzz: %s\n", what);
  std::abort();
}

void CheckOne(const ProxyHeaderResult& r, size_t size) {
  if (r.consumed > size) Fail("consumed more than given");
  if (r.status != ProxyHeaderStatus::kDone) {
    if (r.consumed != 0) Fail("consumed without a header");
    if (r.has_source) Fail("a source without a header");
    if ((r.status == ProxyHeaderStatus::kError) == r.error.empty()) Fail("error text mismatch");
    return;
  }
  if (r.consumed == 0) Fail("an empty header");
  if (r.version == 1 && r.consumed > kMaxProxyV1Length) Fail("v1 longer than 107 bytes");
  if (r.version == 2 && r.consumed > kMaxProxyHeaderLength) Fail("v2 over the cap");
  if (r.version != 1 && r.version != 2) Fail("unknown version");
  if (r.has_source) {
    const bool v4 = r.source.ss_family == AF_INET && r.source_length == sizeof(sockaddr_in);
    const bool v6 = r.source.ss_family == AF_INET6 && r.source_length == sizeof(sockaddr_in6);
    if (!v4 && !v6) Fail("source is not IPv4 or IPv6");
  }
}

bool SameHeader(const ProxyHeaderResult& a, const ProxyHeaderResult& b) {
  return a.status == b.status && a.consumed == b.consumed && a.version == b.version &&
         a.has_source == b.has_source && a.source_length == b.source_length &&
         std::memcmp(&a.source, &b.source, a.source_length) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::Span<const uint8_t> all(data, size);
  const ProxyHeaderResult whole = ParseProxyHeader(all);
  CheckOne(whole, size);
  // Prefixes: every length up to a bound (the parser is linear, so this
  // stays cheap), plus the lengths around the header's end.
  const size_t dense = std::min<size_t>(size, 160);
  bool refused = false;
  for (size_t n = 0; n <= size; ++n) {
    if (n > dense && n + 1 != whole.consumed && n != whole.consumed && n != size) continue;
    const ProxyHeaderResult r = ParseProxyHeader(all.first(n));
    CheckOne(r, n);
    if (refused && r.status != ProxyHeaderStatus::kError) Fail("refused, then accepted with more");
    refused = r.status == ProxyHeaderStatus::kError;
    if (whole.status == ProxyHeaderStatus::kDone) {
      if (n < whole.consumed && r.status != ProxyHeaderStatus::kNeedMore) {
        Fail("a prefix of a complete header did not ask for more");
      }
      if (n >= whole.consumed && !SameHeader(r, whole)) Fail("bytes after the header changed it");
    }
    if (whole.status == ProxyHeaderStatus::kNeedMore && r.status != ProxyHeaderStatus::kNeedMore) {
      Fail("a prefix of an incomplete header was decided");
    }
  }
  return 0;
}
