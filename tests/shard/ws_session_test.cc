// WsSession over memory: requests and client frames are built by hand here
// (masked, as browsers send them) and the server's output is decoded by hand,
// so the test does not trust wslay to check wslay.
#include "shard/ws_session.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace shardmq::shard {
namespace {

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

const std::string kRequest =
    "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Protocol: mqtt\r\n\r\n";

// A client frame: masked unless told otherwise.
std::string Frame(uint8_t opcode, const std::string& payload, bool fin = true, bool mask = true,
                  uint8_t rsv = 0) {
  std::string f;
  f.push_back(static_cast<char>((fin ? 0x80 : 0) | (rsv << 4) | opcode));
  const uint8_t m = mask ? 0x80 : 0;
  if (payload.size() < 126) {
    f.push_back(static_cast<char>(m | payload.size()));
  } else if (payload.size() < 65536) {
    f.push_back(static_cast<char>(m | 126));
    f.push_back(static_cast<char>(payload.size() >> 8));
    f.push_back(static_cast<char>(payload.size()));
  } else {
    f.push_back(static_cast<char>(m | 127));
    for (int i = 7; i >= 0; --i)
      f.push_back(static_cast<char>(uint64_t{payload.size()} >> (8 * i)));
  }
  const char key[4] = {0x12, 0x34, 0x56, 0x78};
  if (mask) f.append(key, 4);
  for (size_t i = 0; i < payload.size(); ++i)
    f.push_back(mask ? payload[i] ^ key[i % 4] : payload[i]);
  return f;
}

struct ServerFrame {
  uint8_t opcode;
  bool fin;
  bool masked;
  std::string payload;
};

// Decodes everything in `out` as server frames; FAILs on a partial frame.
std::vector<ServerFrame> Decode(const std::string& out) {
  std::vector<ServerFrame> frames;
  size_t p = 0;
  while (p < out.size()) {
    if (out.size() - p < 2) {
      ADD_FAILURE() << "partial frame header";
      break;
    }
    ServerFrame f;
    f.fin = (out[p] & 0x80) != 0;
    f.opcode = out[p] & 0x0F;
    f.masked = (out[p + 1] & 0x80) != 0;
    uint64_t len = out[p + 1] & 0x7F;
    p += 2;
    const int ext = len == 126 ? 2 : len == 127 ? 8 : 0;
    if (ext > 0) {
      len = 0;
      for (int i = 0; i < ext; ++i) len = (len << 8) | static_cast<uint8_t>(out[p + i]);
      p += ext;
    }
    if (out.size() - p < len) {
      ADD_FAILURE() << "partial frame payload";
      break;
    }
    f.payload = out.substr(p, len);
    p += len;
    frames.push_back(f);
  }
  return frames;
}

class WsSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    session_ = WsSession::Create(std::make_shared<WsConfig>());
    ASSERT_NE(session_, nullptr);
  }

  // Feeds `bytes` in pieces of `step`, reading after each piece; returns
  // the MQTT bytes and leaves the last Read() result in last_.
  std::string FeedAndRead(const std::string& bytes, size_t step = SIZE_MAX, size_t buf = 16384) {
    std::string got;
    std::vector<uint8_t> out(buf);
    for (size_t pos = 0; pos < bytes.size() || pos == 0; pos += step) {
      session_->Feed(Bytes(bytes.substr(pos, step)));
      for (;;) {
        last_ = session_->Read(absl::MakeSpan(out));
        if (last_ <= 0) break;
        got.append(reinterpret_cast<const char*>(out.data()), static_cast<size_t>(last_));
      }
      if (bytes.empty()) break;
    }
    return got;
  }
  std::string Output() {
    std::string out;
    session_->DrainOutput([&](absl::Span<const uint8_t> b) {
      out.append(reinterpret_cast<const char*>(b.data()), b.size());
    });
    return out;
  }
  void Upgrade() {
    EXPECT_EQ(FeedAndRead(kRequest), "");
    EXPECT_EQ(last_, 0);
    ASSERT_TRUE(session_->handshake_done());
    EXPECT_TRUE(absl::StartsWith(Output(), "HTTP/1.1 101 Switching Protocols\r\n"));
  }

  std::unique_ptr<WsSession> session_;
  int last_ = 0;
};

TEST_F(WsSessionTest, PacketsSplitAcrossFramesAndMergedInOneFrame) {
  Upgrade();
  // Two "packets" in one frame, then one packet over three frames (a
  // fragmented message), all fed one byte at a time.
  const std::string a =
      "\x30\x05"
      "a/b"
      "hi";
  const std::string b(300, 'x');
  const std::string wire = Frame(0x2, a + a) + Frame(0x2, b.substr(0, 100), false) +
                           Frame(0x0, b.substr(100, 100), false) + Frame(0x0, b.substr(200), true);
  EXPECT_EQ(FeedAndRead(wire, 1), a + a + b);
  EXPECT_EQ(last_, 0);
  EXPECT_FALSE(session_->over());
  EXPECT_FALSE(session_->HasOutput());
}

TEST_F(WsSessionTest, FramesRightAfterTheRequestAndLargeFrames) {
  const std::string big(100000, 'q');  // 64-bit length, many wslay chunks
  EXPECT_EQ(FeedAndRead(kRequest + Frame(0x2, "ab") + Frame(0x2, big), 4096), "ab" + big);
  EXPECT_TRUE(session_->handshake_done());
}

TEST_F(WsSessionTest, SmallReadBuffersLoseNothing) {
  Upgrade();
  const std::string payload(5000, 'z');
  EXPECT_EQ(FeedAndRead(Frame(0x2, payload), SIZE_MAX, 3), payload);
}

TEST_F(WsSessionTest, PingIsAnsweredInsideAFragmentedMessage) {
  Upgrade();
  const std::string wire = Frame(0x2, "one", false) + Frame(0x9, "are you there") +
                           Frame(0x0, "two", true) + Frame(0xA, "unsolicited");
  EXPECT_EQ(FeedAndRead(wire, 5), "onetwo");
  auto frames = Decode(Output());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, 0xA);
  EXPECT_TRUE(frames[0].fin);
  EXPECT_FALSE(frames[0].masked);
  EXPECT_EQ(frames[0].payload, "are you there");
}

TEST_F(WsSessionTest, WritesBecomeUnmaskedBinaryFrames) {
  const std::string early = "\x20\x02\x00\x00";  // held until the handshake is done
  ASSERT_TRUE(session_->Write(Bytes(early)));
  EXPECT_FALSE(session_->HasOutput());
  EXPECT_EQ(FeedAndRead(kRequest), "");
  std::string out = Output();
  const size_t body = out.find("\r\n\r\n") + 4;
  ASSERT_TRUE(absl::StartsWith(out, "HTTP/1.1 101"));
  const std::string big(70000, 'p');
  ASSERT_TRUE(session_->Write(Bytes("abc")));
  ASSERT_TRUE(session_->Write(Bytes(big)));
  auto frames = Decode(out.substr(body) + Output());
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0].payload, early);
  EXPECT_EQ(frames[1].payload, "abc");
  EXPECT_EQ(frames[2].payload, big);
  for (const ServerFrame& f : frames) {
    EXPECT_EQ(f.opcode, 0x2);
    EXPECT_TRUE(f.fin);
    EXPECT_FALSE(f.masked);
  }
}

TEST_F(WsSessionTest, PeerCloseIsAnsweredAndEndsTheSession) {
  Upgrade();
  EXPECT_EQ(FeedAndRead(Frame(0x2, "last") + Frame(0x8, std::string("\x03\xe8"
                                                                    "bye",
                                                                    5))),
            "last");
  EXPECT_EQ(last_, -1);
  EXPECT_TRUE(session_->over());
  EXPECT_TRUE(session_->closed_by_peer());
  auto frames = Decode(Output());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, 0x8);
  EXPECT_EQ(frames[0].payload, std::string("\x03\xe8", 2));
  EXPECT_FALSE(session_->Write(Bytes("late")));
}

TEST_F(WsSessionTest, OurCloseSendsNormalClosureOnce) {
  Upgrade();
  session_->Close();
  session_->Close();
  auto frames = Decode(Output());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, 0x8);
  EXPECT_EQ(frames[0].payload, std::string("\x03\xe8", 2));
  EXPECT_FALSE(session_->Write(Bytes("late")));
}

// Each violation ends the session with a close frame carrying `code`.
void ExpectViolation(const std::string& wire, uint16_t code, absl::string_view why) {
  auto session = WsSession::Create(std::make_shared<WsConfig>());
  session->Feed(Bytes(kRequest + wire));
  std::vector<uint8_t> out(16384);
  int r = 0;
  while ((r = session->Read(absl::MakeSpan(out))) > 0) {
  }
  EXPECT_EQ(r, -1) << why;
  EXPECT_TRUE(session->over());
  EXPECT_FALSE(session->closed_by_peer());
  EXPECT_TRUE(absl::StrContains(session->error(), why)) << session->error();
  std::string all;
  session->DrainOutput([&](absl::Span<const uint8_t> b) {
    all.append(reinterpret_cast<const char*>(b.data()), b.size());
  });
  auto frames = Decode(all.substr(all.find("\r\n\r\n") + 4));
  ASSERT_FALSE(frames.empty()) << why;
  EXPECT_EQ(frames.back().opcode, 0x8);
  EXPECT_EQ(frames.back().payload,
            std::string({static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)}));
}

TEST(WsSessionViolationTest, ProtocolViolationsCloseTheSession) {
  ExpectViolation(Frame(0x1, "{\"json\": 1}"), 1003, "text frame");
  ExpectViolation(Frame(0x2, "abc", true, /*mask=*/false), 1002, "unmasked");
  ExpectViolation(Frame(0x2, "abc", true, true, /*rsv=*/4), 1002, "reserved bits");
  ExpectViolation(Frame(0x3, "abc"), 1002, "reserved opcode");
  ExpectViolation(Frame(0x0, "abc"), 1002, "continuation frame without a message");
  ExpectViolation(Frame(0x2, "a", false) + Frame(0x2, "b"), 1002, "inside a fragmented");
  ExpectViolation(Frame(0x9, "ping", /*fin=*/false), 1002, "malformed frame header");
  ExpectViolation(Frame(0x8, "x"), 1002, "1-byte payload");
}

TEST(WsSessionViolationTest, BadHandshakeGets400AndEnds) {
  auto session = WsSession::Create(std::make_shared<WsConfig>(WsConfig{"/other"}));
  session->Feed(Bytes(kRequest));
  std::vector<uint8_t> out(1024);
  EXPECT_EQ(session->Read(absl::MakeSpan(out)), -1);
  EXPECT_TRUE(session->over());
  EXPECT_TRUE(absl::StrContains(session->error(), "unknown path")) << session->error();
  std::string all;
  session->DrainOutput([&](absl::Span<const uint8_t> b) {
    all.append(reinterpret_cast<const char*>(b.data()), b.size());
  });
  EXPECT_TRUE(absl::StartsWith(all, "HTTP/1.1 400 Bad Request\r\n")) << all;
}

}  // namespace
}  // namespace shardmq::shard
