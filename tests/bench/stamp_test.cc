#include "stamp.h"

#include <array>
#include <vector>

#include "gtest/gtest.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"

namespace shardmq::bench {
namespace {

TEST(StampTest, RoundTrip) {
  std::vector<uint8_t> payload(64, 'x');
  const Stamp s{.publisher = 4'000'000'001u,
                .sequence = (1ull << 40) + 7,
                .intended_ns = 123'456'789'012'345ull};
  WriteStamp(s, absl::MakeSpan(payload));
  const auto back = ReadStamp(payload);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, s);
  EXPECT_EQ(payload[kStampSize], 'x');  // Filler untouched.
}

TEST(StampTest, RejectsShortOrForeignPayloads) {
  std::vector<uint8_t> payload(kStampSize, 0);
  WriteStamp(Stamp{.publisher = 1, .sequence = 2, .intended_ns = 3}, absl::MakeSpan(payload));
  EXPECT_FALSE(ReadStamp(absl::MakeConstSpan(payload).subspan(0, kStampSize - 1)).has_value());
  payload[0] = 'X';
  EXPECT_FALSE(ReadStamp(payload).has_value());
  EXPECT_FALSE(ReadStamp({}).has_value());
}

// The stamp survives the trip through the real codec, in every version.
TEST(StampTest, SurvivesEncodeAndDecodeOfAPublish) {
  for (auto v :
       {mqtt::ProtocolVersion::kV31, mqtt::ProtocolVersion::kV311, mqtt::ProtocolVersion::kV5}) {
    std::vector<uint8_t> payload(100, 'p');
    const Stamp s{.publisher = 9, .sequence = 65'537, .intended_ns = 42};
    WriteStamp(s, absl::MakeSpan(payload));
    mqtt::Publish p;
    p.topic = "bench/1/p2p/9";
    p.qos = 1;
    p.packet_id = 3;
    p.payload = absl::MakeConstSpan(payload);
    std::array<uint8_t, 256> wire;
    const size_t n = mqtt::Encode(p, v, absl::MakeSpan(wire));
    ASSERT_GT(n, 0u);
    mqtt::DecodeOptions opts;
    opts.version = v;
    mqtt::Packet out;
    const mqtt::DecodeResult r =
        mqtt::DecodePacket(absl::MakeConstSpan(wire.data(), n), opts, &out);
    ASSERT_EQ(r.status, mqtt::DecodeStatus::kOk);
    const auto back = ReadStamp(std::get<mqtt::Publish>(out).payload);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, s);
  }
}

}  // namespace
}  // namespace shardmq::bench
