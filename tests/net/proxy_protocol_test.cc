#include "net/proxy_protocol.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "net/listen_address.h"

namespace shardmq::net {
namespace {

using namespace std::string_view_literals;
using Bytes = std::vector<uint8_t>;

Bytes B(std::string_view s) { return Bytes(s.begin(), s.end()); }

Bytes Cat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const Bytes kSignature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

// A v2 header: signature, version/command, family/transport, then `block`.
Bytes V2(uint8_t ver_cmd, uint8_t fam, const Bytes& block) {
  Bytes out = kSignature;
  out.push_back(ver_cmd);
  out.push_back(fam);
  out.push_back(static_cast<uint8_t>(block.size() >> 8));
  out.push_back(static_cast<uint8_t>(block.size()));
  return Cat(out, block);
}

// The IPv4 address block: 203.0.113.7:5555 -> 10.0.0.1:1883.
Bytes Inet4Block() { return {203, 0, 113, 7, 10, 0, 0, 1, 0x15, 0xB3, 0x07, 0x5B}; }

Bytes Inet6Block() {
  Bytes b(36, 0);
  inet_pton(AF_INET6, "2001:db8::7", b.data());
  inet_pton(AF_INET6, "2001:db8::1", b.data() + 16);
  b[32] = 0xC3;  // 50000
  b[33] = 0x50;
  b[34] = 0x07;  // 1883
  b[35] = 0x5B;
  return b;
}

ProxyHeaderResult Parse(const Bytes& b) { return ParseProxyHeader(absl::MakeConstSpan(b)); }

std::string Source(const ProxyHeaderResult& r) {
  if (!r.has_source) return "(none)";
  return FormatSocketAddress(reinterpret_cast<const sockaddr*>(&r.source), r.source_length);
}

// Every strict prefix of `header` is "need more", and the whole of it (with
// `trailing` after it) is done with exactly the header consumed: a header
// split across reads at any byte parses the same, and the client's first
// bytes are left for the next layer.
void ExpectCompleteOnlyAtTheEnd(const Bytes& header, const std::string& source) {
  for (size_t n = 0; n < header.size(); ++n) {
    const Bytes prefix(header.begin(), header.begin() + static_cast<ptrdiff_t>(n));
    ProxyHeaderResult r = Parse(prefix);
    EXPECT_EQ(r.status, ProxyHeaderStatus::kNeedMore) << "after " << n << " bytes: " << r.error;
    EXPECT_EQ(r.consumed, 0u);
  }
  const Bytes trailing = {0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T'};  // a CONNECT's start
  for (const Bytes& input : {header, Cat(header, trailing)}) {
    ProxyHeaderResult r = Parse(input);
    ASSERT_EQ(r.status, ProxyHeaderStatus::kDone) << r.error;
    EXPECT_EQ(r.consumed, header.size());
    EXPECT_EQ(Source(r), source);
  }
}

TEST(ProxyProtocolV1Test, Tcp4GivesTheSourceAddressAndPort) {
  ProxyHeaderResult r = Parse(B("PROXY TCP4 203.0.113.7 10.0.0.1 5555 1883\r\nrest"));
  ASSERT_EQ(r.status, ProxyHeaderStatus::kDone) << r.error;
  EXPECT_EQ(r.version, 1);
  EXPECT_EQ(r.consumed, 43u);
  EXPECT_EQ(Source(r), "203.0.113.7:5555");
}

TEST(ProxyProtocolV1Test, Tcp6GivesTheSourceAddressAndPort) {
  ProxyHeaderResult r = Parse(B("PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n"));
  ASSERT_EQ(r.status, ProxyHeaderStatus::kDone) << r.error;
  EXPECT_EQ(Source(r), "[2001:db8::7]:65535");
}

TEST(ProxyProtocolV1Test, UnknownKeepsTheSocketsOwnAddress) {
  for (const char* text : {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"}) {
    ProxyHeaderResult r = Parse(B(text));
    ASSERT_EQ(r.status, ProxyHeaderStatus::kDone) << text << ": " << r.error;
    EXPECT_FALSE(r.has_source);
    EXPECT_EQ(r.consumed, std::string_view(text).size());
  }
}

TEST(ProxyProtocolV1Test, SplitAtEveryByte) {
  ExpectCompleteOnlyAtTheEnd(B("PROXY TCP4 203.0.113.7 10.0.0.1 5555 1883\r\n"),
                             "203.0.113.7:5555");
  ExpectCompleteOnlyAtTheEnd(B("PROXY TCP6 ::1 ::1 1 2\r\n"), "[::1]:1");
  ExpectCompleteOnlyAtTheEnd(B("PROXY UNKNOWN\r\n"), "(none)");
}

TEST(ProxyProtocolV1Test, TheLongestHeaderFits) {
  const std::string longest =
      "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
      "65535 65535\r\n";
  ASSERT_EQ(longest.size(), 104u);
  EXPECT_EQ(Parse(B(longest)).status, ProxyHeaderStatus::kDone);
  // UNKNOWN may carry anything, up to the 107-byte bound.
  const std::string unknown = "PROXY UNKNOWN " + std::string(91, 'x') + "\r\n";
  ASSERT_EQ(unknown.size(), 107u);
  EXPECT_EQ(Parse(B(unknown)).status, ProxyHeaderStatus::kDone);
}

TEST(ProxyProtocolV1Test, RefusesMalformedHeaders) {
  const std::string_view bad[] = {
      "PROXY TCP4 1.2.3 10.0.0.1 5555 1883\r\n"sv,       // not an address
      "PROXY TCP4 203.0.113.7 10.0.0 5555 1883\r\n"sv,   // bad destination
      "PROXY TCP4 ::1 ::1 5555 1883\r\n"sv,              // family mismatch
      "PROXY TCP6 1.2.3.4 1.2.3.4 5555 1883\r\n"sv,      // family mismatch
      "PROXY TCP4 1.2.3.4 1.2.3.4 65536 1883\r\n"sv,     // port out of range
      "PROXY TCP4 1.2.3.4 1.2.3.4 5555 -1\r\n"sv,        // signed port
      "PROXY TCP4 1.2.3.4 1.2.3.4 +5555 1883\r\n"sv,     // leading garbage
      "PROXY TCP4 1.2.3.4 1.2.3.4 05555 1883\r\n"sv,     // leading zero
      "PROXY TCP4 1.2.3.4 1.2.3.4 5555 1883x\r\n"sv,     // trailing garbage
      "PROXY TCP4 1.2.3.4  1.2.3.4 5555 1883\r\n"sv,     // two spaces
      "PROXY TCP4 1.2.3.4 1.2.3.4 5555 1883 \r\n"sv,     // trailing space
      "PROXY TCP4 1.2.3.4 1.2.3.4 5555\r\n"sv,           // missing field
      "PROXY TCP4 1.2.3.4 1.2.3.4 5555 1883 7\r\n"sv,    // extra field
      "PROXY UDP4 1.2.3.4 1.2.3.4 5555 1883\r\n"sv,      // not TCP
      "PROXY tcp4 1.2.3.4 1.2.3.4 5555 1883\r\n"sv,      // case matters
      "PROXY UNKNOWNX\r\n"sv,                            // not UNKNOWN
      "PROXY TCP4 1.2.3.4 1.2.3.4 5555 1883\n"sv,        // LF only
      "PROXY TCP4 1.2.3.4 1.2.3.4 5555 1883\rX"sv,       // CR only
      "PROXY\r\n"sv,                                     // no protocol
      "PROXY \r\n"sv,                                    // empty protocol
      "PROXZ TCP4 1.2.3.4 1.2.3.4 5555 1883\r\n"sv,      // not PROXY
      "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"sv,  // a plain CONNECT
      "GET /mqtt HTTP/1.1\r\n"sv,                        // a plain Upgrade
  };
  for (std::string_view text : bad) {
    ProxyHeaderResult r = Parse(B(text));
    EXPECT_EQ(r.status, ProxyHeaderStatus::kError) << text;
    EXPECT_FALSE(r.error.empty()) << text;
  }
}

TEST(ProxyProtocolV1Test, RefusesALineLongerThan107Bytes) {
  const std::string line = "PROXY UNKNOWN " + std::string(92, 'x') + "\r\n";  // 108 bytes
  EXPECT_EQ(Parse(B(line)).status, ProxyHeaderStatus::kError);
  // Without a CRLF the parser gives up at 107 bytes, not later.
  const std::string endless = "PROXY UNKNOWN " + std::string(200, 'x');
  EXPECT_EQ(Parse(B(endless.substr(0, 106))).status, ProxyHeaderStatus::kNeedMore);
  EXPECT_EQ(Parse(B(endless.substr(0, 107))).status, ProxyHeaderStatus::kError);
}

TEST(ProxyProtocolV2Test, ProxyInet4) {
  const Bytes header = V2(0x21, 0x11, Inet4Block());
  ProxyHeaderResult r = Parse(header);
  ASSERT_EQ(r.status, ProxyHeaderStatus::kDone) << r.error;
  EXPECT_EQ(r.version, 2);
  EXPECT_EQ(r.consumed, 28u);
  EXPECT_EQ(Source(r), "203.0.113.7:5555");
  ExpectCompleteOnlyAtTheEnd(header, "203.0.113.7:5555");
}

TEST(ProxyProtocolV2Test, ProxyInet6) {
  const Bytes header = V2(0x21, 0x21, Inet6Block());
  ExpectCompleteOnlyAtTheEnd(header, "[2001:db8::7]:50000");
}

TEST(ProxyProtocolV2Test, TlvsAreSkipped) {
  // PP2_TYPE_AUTHORITY "mq.example" and an empty PP2_TYPE_NOOP.
  Bytes block = Inet4Block();
  const Bytes tlvs = {0x02, 0x00, 0x0A, 'm', 'q', '.',  'e',  'x',
                      'a',  'm',  'p',  'l', 'e', 0x04, 0x00, 0x00};
  block = Cat(block, tlvs);
  ExpectCompleteOnlyAtTheEnd(V2(0x21, 0x11, block), "203.0.113.7:5555");
}

TEST(ProxyProtocolV2Test, LocalKeepsTheSocketsOwnAddress) {
  // A health check from the balancer: no block, or one that is ignored.
  ExpectCompleteOnlyAtTheEnd(V2(0x20, 0x00, {}), "(none)");
  ExpectCompleteOnlyAtTheEnd(V2(0x20, 0x11, Inet4Block()), "(none)");
}

TEST(ProxyProtocolV2Test, UnspecAndUnixCarryNoAddress) {
  ExpectCompleteOnlyAtTheEnd(V2(0x21, 0x00, {}), "(none)");
  ExpectCompleteOnlyAtTheEnd(V2(0x21, 0x31, Bytes(216, 0)), "(none)");
}

TEST(ProxyProtocolV2Test, RefusesMalformedHeaders) {
  struct Case {
    const char* what;
    Bytes bytes;
  };
  Bytes bad_signature = V2(0x21, 0x11, Inet4Block());
  bad_signature[11] = 0x0B;
  Bytes tlv_overflow = Cat(Inet4Block(), {0x02, 0x00, 0x05, 'a'});
  Bytes tlv_truncated = Cat(Inet4Block(), {0x02, 0x00});
  const Case cases[] = {
      {"bad signature", bad_signature},
      {"version 1 in a binary header", V2(0x11, 0x11, Inet4Block())},
      {"version 3", V2(0x31, 0x11, Inet4Block())},
      {"command 2", V2(0x22, 0x11, Inet4Block())},
      {"UDP over IPv4", V2(0x21, 0x12, Inet4Block())},
      {"UDP over IPv6", V2(0x21, 0x22, Inet6Block())},
      {"IPv4 without STREAM", V2(0x21, 0x10, Inet4Block())},
      {"unknown family", V2(0x21, 0x41, Inet4Block())},
      {"unknown transport", V2(0x21, 0x13, Inet4Block())},
      {"IPv4 block too short", V2(0x21, 0x11, Bytes(11, 0))},
      {"IPv6 block too short", V2(0x21, 0x21, Inet4Block())},
      {"unix block too short", V2(0x21, 0x31, Bytes(100, 0))},
      {"TLV longer than the header", V2(0x21, 0x11, tlv_overflow)},
      {"TLV cut in its length", V2(0x21, 0x11, tlv_truncated)},
  };
  for (const Case& c : cases) {
    ProxyHeaderResult r = Parse(c.bytes);
    EXPECT_EQ(r.status, ProxyHeaderStatus::kError) << c.what;
    EXPECT_FALSE(r.error.empty()) << c.what;
  }
}

TEST(ProxyProtocolV2Test, RefusesABadSignatureOrVersionBeforeTheHeaderIsComplete) {
  // The connection is dropped at the first wrong byte, not after waiting
  // for a length that may never come.
  EXPECT_EQ(Parse({0x0D, 0x0A, 0x0D, 0x0B}).status, ProxyHeaderStatus::kError);
  Bytes v1_in_binary = kSignature;
  v1_in_binary.push_back(0x11);
  EXPECT_EQ(Parse(v1_in_binary).status, ProxyHeaderStatus::kError);
}

TEST(ProxyProtocolV2Test, RefusesALengthOverTheCap) {
  Bytes header = kSignature;
  const size_t length = kMaxProxyV2PayloadLength + 1;
  header.insert(header.end(),
                {0x21, 0x11, static_cast<uint8_t>(length >> 8), static_cast<uint8_t>(length)});
  EXPECT_EQ(Parse(header).status, ProxyHeaderStatus::kError);
  // At the cap it is fine (TLV padding).
  Bytes block = Inet4Block();
  const size_t pad = kMaxProxyV2PayloadLength - block.size() - 3;
  block.insert(block.end(), {0x04, static_cast<uint8_t>(pad >> 8), static_cast<uint8_t>(pad)});
  block.resize(kMaxProxyV2PayloadLength, 0);
  ProxyHeaderResult r = Parse(V2(0x21, 0x11, block));
  ASSERT_EQ(r.status, ProxyHeaderStatus::kDone) << r.error;
  EXPECT_EQ(r.consumed, kMaxProxyHeaderLength);
}

TEST(ProxyProtocolTest, EmptyInputNeedsMore) {
  EXPECT_EQ(Parse({}).status, ProxyHeaderStatus::kNeedMore);
}

}  // namespace
}  // namespace shardmq::net
