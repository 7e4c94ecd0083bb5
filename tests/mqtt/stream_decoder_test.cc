// The StreamDecoder must decode a byte stream identically however it is cut
// into chunks, copy only packets that straddle chunks, and stop or fail the
// way its contract says.
#include "mqtt/stream_decoder.h"

#include <cstdint>
#include <string>
#include <vector>

#include "bytes_builder.h"
#include "gtest/gtest.h"
#include "mqtt/encoder.h"
#include "sample_packets.h"

namespace shardmq::mqtt {
namespace {

using testing::Bytes;
using testing::Pkt;
using testing::SamplePacket;
using testing::SamplePackets;

struct Stream {
  std::vector<uint8_t> bytes;
  std::vector<Packet> packets;  // Expected, in order.
  std::vector<size_t> ends;     // End offset of each packet.
};

// CONNECT first (so the decoder learns the version), then every sample.
Stream BuildStream(ProtocolVersion v) {
  Stream s;
  for (const SamplePacket& sp : SamplePackets(v)) {
    const bool is_connect = std::holds_alternative<Connect>(sp.packet);
    if (s.packets.empty() != is_connect) continue;  // Exactly one CONNECT, first.
    std::vector<uint8_t> buf(EncodedSize(sp.packet, v));
    Encode(sp.packet, v, absl::MakeSpan(buf));
    s.bytes.insert(s.bytes.end(), buf.begin(), buf.end());
    s.packets.push_back(sp.packet);
    s.ends.push_back(s.bytes.size());
  }
  // The remaining samples (skipped above because CONNECT must come first).
  for (const SamplePacket& sp : SamplePackets(v)) {
    if (std::holds_alternative<Connect>(sp.packet)) continue;
    bool seen = false;
    for (const Packet& p : s.packets) seen = seen || p == sp.packet;
    if (seen) continue;
    std::vector<uint8_t> buf(EncodedSize(sp.packet, v));
    Encode(sp.packet, v, absl::MakeSpan(buf));
    s.bytes.insert(s.bytes.end(), buf.begin(), buf.end());
    s.packets.push_back(sp.packet);
    s.ends.push_back(s.bytes.size());
  }
  return s;
}

// Feeds `chunks` (cut points into s.bytes) and checks every packet.
void FeedAndCheck(const Stream& s, const std::vector<size_t>& cuts) {
  StreamDecoder dec;
  size_t next = 0;
  size_t begin = 0;
  for (size_t i = 0; i <= cuts.size(); ++i) {
    const size_t end = i < cuts.size() ? cuts[i] : s.bytes.size();
    // Copy the chunk so views into it cannot outlive it unnoticed (ASan).
    std::vector<uint8_t> chunk(s.bytes.begin() + begin, s.bytes.begin() + end);
    const DecodeResult r = dec.Feed(chunk, [&](const Packet& p) {
      EXPECT_LT(next, s.packets.size());
      if (next < s.packets.size()) {
        EXPECT_TRUE(p == s.packets[next]) << "packet " << next;
      }
      ++next;
      return true;
    });
    ASSERT_EQ(r.status, DecodeStatus::kNeedMore) << r.what;
    ASSERT_EQ(r.consumed, chunk.size());
    begin = end;
  }
  EXPECT_EQ(next, s.packets.size());
  EXPECT_EQ(dec.buffered_bytes(), 0u);
}

class StreamDecoderTest : public ::testing::TestWithParam<ProtocolVersion> {};

TEST_P(StreamDecoderTest, WholeStreamInOneChunk) {
  const Stream s = BuildStream(GetParam());
  ASSERT_GT(s.packets.size(), 15u);
  FeedAndCheck(s, {});
}

TEST_P(StreamDecoderTest, SplitAtEveryPoint) {
  const Stream s = BuildStream(GetParam());
  for (size_t cut = 1; cut < s.bytes.size(); ++cut) {
    SCOPED_TRACE(cut);
    FeedAndCheck(s, {cut});
  }
}

TEST_P(StreamDecoderTest, OneByteAtATime) {
  const Stream s = BuildStream(GetParam());
  std::vector<size_t> cuts;
  for (size_t i = 1; i < s.bytes.size(); ++i) cuts.push_back(i);
  FeedAndCheck(s, cuts);
}

TEST_P(StreamDecoderTest, SplitEveryPacketAtEveryPointInThreeChunks) {
  const Stream s = BuildStream(GetParam());
  // For each packet, cut inside it at every offset and also right after it.
  size_t start = 0;
  for (size_t k = 0; k < s.ends.size(); ++k) {
    for (size_t off = start + 1; off < s.ends[k]; ++off) FeedAndCheck(s, {off, s.ends[k]});
    start = s.ends[k];
  }
}

// Two connections' decoders sharing one scratch Packet (as a shard does),
// fed interleaved one byte at a time: each still sees its own packets.
TEST_P(StreamDecoderTest, DecodersSharingOneScratchStayIndependent) {
  const Stream s = BuildStream(GetParam());
  Packet scratch;
  StreamDecoder a(DecodeOptions{}, &scratch);
  StreamDecoder b(DecodeOptions{}, &scratch);
  size_t next_a = 0;
  size_t next_b = 0;
  for (size_t i = 0; i < s.bytes.size(); ++i) {
    const std::vector<uint8_t> byte = {s.bytes[i]};
    for (auto [dec, next] : {std::pair{&a, &next_a}, std::pair{&b, &next_b}}) {
      const DecodeResult r = dec->Feed(byte, [&](const Packet& p) {
        EXPECT_TRUE(*next < s.packets.size() && p == s.packets[*next]) << "packet " << *next;
        ++*next;
        return true;
      });
      ASSERT_EQ(r.status, DecodeStatus::kNeedMore) << r.what;
    }
  }
  EXPECT_EQ(next_a, s.packets.size());
  EXPECT_EQ(next_b, s.packets.size());
}

TEST_P(StreamDecoderTest, CompletePacketsAreNotCopied) {
  const Stream s = BuildStream(GetParam());
  StreamDecoder dec;
  const uint8_t* lo = s.bytes.data();
  const uint8_t* hi = lo + s.bytes.size();
  size_t n = 0;
  dec.Feed(s.bytes, [&](const Packet& p) {
    if (const Publish* pub = std::get_if<Publish>(&p)) {
      if (!pub->payload.empty()) {
        EXPECT_GE(pub->payload.data(), lo);
        EXPECT_LE(pub->payload.data() + pub->payload.size(), hi);
      }
      const auto* t = reinterpret_cast<const uint8_t*>(pub->topic.data());
      if (!pub->topic.empty()) {
        EXPECT_TRUE(t >= lo && t < hi);
      }
    }
    ++n;
    return true;
  });
  EXPECT_EQ(n, s.packets.size());
}

INSTANTIATE_TEST_SUITE_P(AllVersions, StreamDecoderTest,
                         ::testing::Values(ProtocolVersion::kV31, ProtocolVersion::kV311,
                                           ProtocolVersion::kV5),
                         [](const auto& info) {
                           return std::string(info.param == ProtocolVersion::kV31    ? "V31"
                                              : info.param == ProtocolVersion::kV311 ? "V311"
                                                                                     : "V5");
                         });

std::vector<uint8_t> Connect311() {
  return Pkt(0x10, Bytes().Str("MQTT").U8(4).U8(2).U16(60).Str("c"));
}

// Only the straddling packet is buffered, and only its bytes.
TEST(StreamDecoderBufferTest, BuffersOnlyTheTrailingPartialPacket) {
  StreamDecoder dec;
  std::vector<uint8_t> bytes = Connect311();
  const std::vector<uint8_t> pub = Pkt(0x30, Bytes().Str("t").Raw({1, 2, 3, 4, 5, 6, 7, 8}));
  bytes.insert(bytes.end(), pub.begin(), pub.begin() + 5);
  int packets = 0;
  auto count = [&](const Packet&) {
    ++packets;
    return true;
  };
  DecodeResult r = dec.Feed(bytes, count);
  EXPECT_EQ(r.status, DecodeStatus::kNeedMore);
  EXPECT_EQ(packets, 1);
  EXPECT_EQ(dec.buffered_bytes(), 5u);
  EXPECT_EQ(dec.protocol_version(), ProtocolVersion::kV311);
  // The next chunk completes it and carries the start of a PINGREQ.
  std::vector<uint8_t> next(pub.begin() + 5, pub.end());
  next.push_back(0xC0);
  r = dec.Feed(next, count);
  EXPECT_EQ(packets, 2);
  EXPECT_EQ(dec.buffered_bytes(), 1u);
  r = dec.Feed(std::vector<uint8_t>{0x00}, count);
  EXPECT_EQ(packets, 3);
  EXPECT_EQ(dec.buffered_bytes(), 0u);
}

// on_packet returning false stops; the unconsumed rest is fed again later.
TEST(StreamDecoderBufferTest, StopAndResume) {
  StreamDecoder dec;
  std::vector<uint8_t> bytes = Connect311();
  for (int i = 0; i < 3; ++i) bytes.insert(bytes.end(), {0xC0, 0x00});
  int packets = 0;
  DecodeResult r = dec.Feed(bytes, [&](const Packet&) {
    ++packets;
    return packets != 2;
  });
  EXPECT_EQ(r.status, DecodeStatus::kOk);
  EXPECT_EQ(packets, 2);
  EXPECT_EQ(r.consumed, Connect311().size() + 2);
  r = dec.Feed(absl::MakeConstSpan(bytes).subspan(r.consumed), [&](const Packet&) {
    ++packets;
    return true;
  });
  EXPECT_EQ(r.status, DecodeStatus::kNeedMore);
  EXPECT_EQ(packets, 4);
}

// Before CONNECT only CONNECT is accepted [MQTT-3.1.0-1].
TEST(StreamDecoderErrorTest, FirstPacketMustBeConnect) {
  StreamDecoder dec;
  const DecodeResult r = dec.Feed(std::vector<uint8_t>{0xC0, 0x00}, [](const Packet&) {
    ADD_FAILURE();
    return true;
  });
  EXPECT_EQ(r.status, DecodeStatus::kError);
  EXPECT_EQ(r.reason, ReasonCode::kProtocolError);
  EXPECT_TRUE(dec.failed());
  // Sticky.
  EXPECT_EQ(dec.Feed(Connect311(), [](const Packet&) { return true; }).status,
            DecodeStatus::kError);
}

// A second CONNECT is delivered to the broker (which rejects it,
// [MQTT-3.1.0-2]) but does not switch the decoder's version.
TEST(StreamDecoderVersionTest, SecondConnectDoesNotSwitchVersion) {
  StreamDecoder dec;
  std::vector<uint8_t> bytes = Connect311();
  const std::vector<uint8_t> v5 =
      Pkt(0x10, Bytes().Str("MQTT").U8(5).U8(2).U16(0).Props({}).Str("c"));
  bytes.insert(bytes.end(), v5.begin(), v5.end());
  int connects = 0;
  const DecodeResult r = dec.Feed(bytes, [&](const Packet& p) {
    connects += std::holds_alternative<Connect>(p);
    return true;
  });
  EXPECT_EQ(r.status, DecodeStatus::kNeedMore);
  EXPECT_EQ(connects, 2);
  EXPECT_EQ(dec.protocol_version(), ProtocolVersion::kV311);
  dec.set_protocol_version(ProtocolVersion::kV5);
  EXPECT_EQ(dec.protocol_version(), ProtocolVersion::kV5);
}

// Packet too large is reported when the header arrives, even split.
TEST(StreamDecoderErrorTest, PacketTooLargeBeforeBody) {
  DecodeOptions o;
  o.version = ProtocolVersion::kV5;
  o.max_packet_size = 1000;
  StreamDecoder dec(o);
  auto none = [](const Packet&) { return true; };
  EXPECT_EQ(dec.Feed(std::vector<uint8_t>{0x30, 0x80}, none).status, DecodeStatus::kNeedMore);
  const DecodeResult r = dec.Feed(std::vector<uint8_t>{0x80}, none);
  EXPECT_EQ(r.status, DecodeStatus::kNeedMore);
  const DecodeResult r2 = dec.Feed(std::vector<uint8_t>{0x01}, none);  // 16384 bytes.
  EXPECT_EQ(r2.status, DecodeStatus::kError);
  EXPECT_EQ(r2.reason, ReasonCode::kPacketTooLarge);
  EXPECT_LT(dec.buffered_bytes(), 5u);
}

// A malformed packet after good ones: the good ones are delivered, the
// error reports how far into the chunk the bad packet ended.
TEST(StreamDecoderErrorTest, ErrorAfterGoodPackets) {
  StreamDecoder dec;
  dec.set_protocol_version(ProtocolVersion::kV311);
  std::vector<uint8_t> bytes = {0xC0, 0x00, 0xC0, 0x00, 0x62, 0x02, 0x00, 0x00};
  int packets = 0;
  const DecodeResult r = dec.Feed(bytes, [&](const Packet&) {
    ++packets;
    return true;
  });
  EXPECT_EQ(packets, 2);
  EXPECT_EQ(r.status, DecodeStatus::kError);
  EXPECT_EQ(r.reason, ReasonCode::kProtocolError);  // Packet identifier 0.
  EXPECT_EQ(r.consumed, bytes.size());
}

// An unsupported CONNECT level is reported with the level seen.
TEST(StreamDecoderErrorTest, UnsupportedVersion) {
  StreamDecoder dec;
  const std::vector<uint8_t> bytes = Pkt(0x10, Bytes().Str("MQTT").U8(7).U8(2).U16(0).Str("c"));
  const DecodeResult r = dec.Feed(bytes, [](const Packet&) { return true; });
  EXPECT_EQ(r.reason, ReasonCode::kUnsupportedProtocolVersion);
  EXPECT_EQ(r.protocol_level, 7);
}

}  // namespace
}  // namespace shardmq::mqtt
