// UTF-8 string validation (MQTT 5 section 1.5.4) and Variable Byte Integers
// (section 1.5.5), checked against the examples the specification gives.
#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "mqtt/utf8.h"
#include "mqtt/varint.h"

namespace shardmq::mqtt {
namespace {

TEST(Utf8Test, AcceptsAsciiAndEmpty) {
  EXPECT_TRUE(IsValidMqttUtf8(""));
  EXPECT_TRUE(IsValidMqttUtf8("a"));
  EXPECT_TRUE(IsValidMqttUtf8("sensors/room1/temperature and a long tail of ascii"));
}

// 1.5.4 example: "A" followed by U+2A6D4 is 41 F0 AA 9B 94.
TEST(Utf8Test, SpecExampleSupplementaryCharacter) {
  EXPECT_TRUE(IsValidMqttUtf8("A\xF0\xAA\x9B\x94"));
}

// [MQTT-1.5.4-3]: 0xEF 0xBB 0xBF is U+FEFF, an ordinary character.
TEST(Utf8Test, MQTT_1_5_4_3_ByteOrderMarkIsAccepted) {
  EXPECT_TRUE(IsValidMqttUtf8("\xEF\xBB\xBF"));
  EXPECT_TRUE(IsValidMqttUtf8("a\xEF\xBB\xBF/b"));
}

TEST(Utf8Test, AcceptsBoundaryCodePoints) {
  EXPECT_TRUE(IsValidMqttUtf8("\x01"));              // U+0001
  EXPECT_TRUE(IsValidMqttUtf8("\x7F"));              // U+007F
  EXPECT_TRUE(IsValidMqttUtf8("\xC2\x80"));          // U+0080
  EXPECT_TRUE(IsValidMqttUtf8("\xDF\xBF"));          // U+07FF
  EXPECT_TRUE(IsValidMqttUtf8("\xE0\xA0\x80"));      // U+0800
  EXPECT_TRUE(IsValidMqttUtf8("\xED\x9F\xBF"));      // U+D7FF
  EXPECT_TRUE(IsValidMqttUtf8("\xEE\x80\x80"));      // U+E000
  EXPECT_TRUE(IsValidMqttUtf8("\xEF\xBF\xBF"));      // U+FFFF
  EXPECT_TRUE(IsValidMqttUtf8("\xF0\x90\x80\x80"));  // U+10000
  EXPECT_TRUE(IsValidMqttUtf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF
}

// [MQTT-1.5.4-2]: U+0000 is not allowed, wherever it is (also inside the
// 8-byte fast path).
TEST(Utf8Test, MQTT_1_5_4_2_RejectsNul) {
  EXPECT_FALSE(IsValidMqttUtf8(std::string_view("\0", 1)));
  EXPECT_FALSE(IsValidMqttUtf8(std::string_view("abc\0def", 7)));
  EXPECT_FALSE(IsValidMqttUtf8(std::string_view("abcdefgh\0", 9)));
  for (size_t i = 0; i < 20; ++i) {
    std::string s(20, 'x');
    s[i] = '\0';
    EXPECT_FALSE(IsValidMqttUtf8(s)) << i;
  }
}

// [MQTT-1.5.4-1]: surrogates U+D800..U+DFFF are ill-formed.
TEST(Utf8Test, MQTT_1_5_4_1_RejectsSurrogates) {
  EXPECT_FALSE(IsValidMqttUtf8("\xED\xA0\x80"));  // U+D800
  EXPECT_FALSE(IsValidMqttUtf8("\xED\xBF\xBF"));  // U+DFFF
  EXPECT_FALSE(IsValidMqttUtf8("abcdefgh\xED\xB0\x80"));
}

// [MQTT-1.5.4-1]: overlong encodings and other ill-formed sequences.
TEST(Utf8Test, MQTT_1_5_4_1_RejectsIllFormed) {
  EXPECT_FALSE(IsValidMqttUtf8("\xC0\x80"));          // Overlong U+0000.
  EXPECT_FALSE(IsValidMqttUtf8("\xC1\xBF"));          // Overlong U+007F.
  EXPECT_FALSE(IsValidMqttUtf8("\xE0\x80\x80"));      // Overlong 3-byte.
  EXPECT_FALSE(IsValidMqttUtf8("\xE0\x9F\xBF"));      // Overlong U+07FF.
  EXPECT_FALSE(IsValidMqttUtf8("\xF0\x80\x80\x80"));  // Overlong 4-byte.
  EXPECT_FALSE(IsValidMqttUtf8("\xF0\x8F\xBF\xBF"));  // Overlong U+FFFF.
  EXPECT_FALSE(IsValidMqttUtf8("\xF4\x90\x80\x80"));  // U+110000.
  EXPECT_FALSE(IsValidMqttUtf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(IsValidMqttUtf8("\xFF"));
  EXPECT_FALSE(IsValidMqttUtf8("\x80"));          // Lone continuation.
  EXPECT_FALSE(IsValidMqttUtf8("\xC2"));          // Truncated.
  EXPECT_FALSE(IsValidMqttUtf8("\xE2\x82"));      // Truncated.
  EXPECT_FALSE(IsValidMqttUtf8("\xF0\x9F\x98"));  // Truncated.
  EXPECT_FALSE(IsValidMqttUtf8("\xC2\x41"));      // Bad continuation.
  EXPECT_FALSE(IsValidMqttUtf8("\xE2\x28\xA1"));
  EXPECT_FALSE(IsValidMqttUtf8("\xF0\x9F\x98\x28"));
}

TEST(Utf8Test, ValidatesEveryOffsetAfterAsciiRun) {
  for (size_t prefix = 0; prefix < 17; ++prefix) {
    std::string ok(prefix, 'a');
    ok += "\xE2\x82\xAC";  // U+20AC
    ok += std::string(prefix, 'b');
    EXPECT_TRUE(IsValidMqttUtf8(ok)) << prefix;
    std::string bad(prefix, 'a');
    bad += "\xE2\x82";
    EXPECT_FALSE(IsValidMqttUtf8(bad)) << prefix;
  }
}

struct VarintExample {
  uint32_t value;
  std::vector<uint8_t> bytes;
};

// MQTT 5 table 1-1 (the same table is 2.4 in 3.1.1): the boundaries.
TEST(VarintTest, SpecTableRoundTrips) {
  const VarintExample examples[] = {
      {0, {0x00}},
      {127, {0x7F}},
      {128, {0x80, 0x01}},
      {16'383, {0xFF, 0x7F}},
      {16'384, {0x80, 0x80, 0x01}},
      {2'097'151, {0xFF, 0xFF, 0x7F}},
      {2'097'152, {0x80, 0x80, 0x80, 0x01}},
      {268'435'455, {0xFF, 0xFF, 0xFF, 0x7F}},
  };
  for (const auto& e : examples) {
    uint8_t buf[4];
    ASSERT_EQ(VarintSize(e.value), e.bytes.size());
    ASSERT_EQ(EncodeVarint(e.value, buf), e.bytes.size());
    EXPECT_EQ(std::vector<uint8_t>(buf, buf + e.bytes.size()), e.bytes) << e.value;
    uint32_t v = 0;
    size_t len = 0;
    ASSERT_EQ(DecodeVarint(e.bytes.data(), e.bytes.size(), &v, &len), VarintStatus::kOk);
    EXPECT_EQ(v, e.value);
    EXPECT_EQ(len, e.bytes.size());
    // Every strict prefix needs more.
    for (size_t n = 0; n < e.bytes.size(); ++n) {
      EXPECT_EQ(DecodeVarint(e.bytes.data(), n, &v, &len), VarintStatus::kNeedMore);
    }
  }
}

// 1.5.5: at most four bytes; a fifth continuation byte is Malformed.
TEST(VarintTest, FiveBytesAreMalformed) {
  const uint8_t five[] = {0xFF, 0xFF, 0xFF, 0xFF, 0x01};
  uint32_t v;
  size_t len;
  EXPECT_EQ(DecodeVarint(five, 5, &v, &len), VarintStatus::kMalformed);
  EXPECT_EQ(DecodeVarint(five, 4, &v, &len), VarintStatus::kMalformed);
}

// [MQTT-1.5.5-1]: the minimum number of bytes MUST be used.
TEST(VarintTest, MQTT_1_5_5_1_NonMinimalIsMalformed) {
  const uint8_t zero2[] = {0x80, 0x00};
  const uint8_t one3[] = {0x81, 0x80, 0x00};
  uint32_t v;
  size_t len;
  EXPECT_EQ(DecodeVarint(zero2, 2, &v, &len), VarintStatus::kMalformed);
  EXPECT_EQ(DecodeVarint(one3, 3, &v, &len), VarintStatus::kMalformed);
}

}  // namespace
}  // namespace shardmq::mqtt
