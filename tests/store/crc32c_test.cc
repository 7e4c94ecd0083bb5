#include "store/crc32c.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace shardmq::store {
namespace {

// Bit by bit, straight from the definition: the reference the fast paths
// must agree with.
uint32_t Reference(const uint8_t* p, size_t size) {
  uint32_t crc = 0xffffffff;
  for (size_t i = 0; i < size; ++i) {
    crc ^= p[i];
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0x82f63b78 & (0u - (crc & 1)));
  }
  return ~crc;
}

TEST(Crc32cTest, MatchesPublishedCheckValues) {
  const std::string check = "123456789";
  EXPECT_EQ(Crc32c(0, check.data(), check.size()), 0xe3069283u);
  // RFC 3720 (iSCSI) appendix B.4: 32 bytes of zeros, and of 0xff.
  std::vector<uint8_t> zeros(32, 0), ones(32, 0xff);
  EXPECT_EQ(Crc32c(0, zeros.data(), zeros.size()), 0x8a9136aau);
  EXPECT_EQ(Crc32c(0, ones.data(), ones.size()), 0x62a8ab43u);
  EXPECT_EQ(Crc32c(0, nullptr, 0), 0u);
}

TEST(Crc32cTest, AgreesWithTheDefinitionAtEveryLengthAndAlignment) {
  std::mt19937 random(7);
  std::vector<uint8_t> bytes(300);
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(random());
  for (size_t start = 0; start < 9; ++start) {
    for (size_t size = 0; start + size <= 120; ++size) {
      ASSERT_EQ(Crc32c(0, bytes.data() + start, size), Reference(bytes.data() + start, size))
          << "start " << start << " size " << size;
    }
  }
}

TEST(Crc32cTest, ExtendsAcrossPieces) {
  const std::string text = "the quick brown fox jumps over the lazy dog";
  const uint32_t whole = Crc32c(0, text.data(), text.size());
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    uint32_t crc = Crc32c(0, text.data(), cut);
    EXPECT_EQ(Crc32c(crc, text.data() + cut, text.size() - cut), whole) << cut;
  }
}

TEST(Crc32cTest, MaskingRoundTripsAndChangesTheValue) {
  for (uint32_t crc : {0u, 1u, 0xe3069283u, 0xffffffffu}) {
    EXPECT_EQ(UnmaskCrc(MaskCrc(crc)), crc);
    EXPECT_NE(MaskCrc(crc), crc);
  }
}

}  // namespace
}  // namespace shardmq::store
