// Fast MQTT UTF-8 validator: a word-at-a-time ASCII loop plus a per-sequence
// check of the Unicode "well-formed byte sequences" table (Unicode 3.9, D92).
#include "mqtt/utf8.h"

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace shardmq::mqtt {
namespace {

constexpr uint64_t kHighBits = 0x8080808080808080ull;
constexpr uint64_t kLowBits = 0x0101010101010101ull;

// True when all 8 bytes of `w` are ASCII and none is zero.
inline bool AllAsciiNonZero(uint64_t w) {
  const bool has_zero = ((w - kLowBits) & ~w & kHighBits) != 0;
  return ((w & kHighBits) == 0) && !has_zero;
}

}  // namespace

bool IsValidMqttUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const uint8_t* const end = p + s.size();
  while (p < end) {
    // Fast path: 8 ASCII bytes at a time.
    while (end - p >= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      if (!AllAsciiNonZero(w)) break;
      p += 8;
    }
    if (p == end) break;
    const uint8_t b0 = *p;
    if (b0 < 0x80) {
      if (b0 == 0) return false;  // [MQTT-1.5.4-2]
      ++p;
      continue;
    }
    const std::ptrdiff_t left = end - p;
    if (b0 >= 0xC2 && b0 <= 0xDF) {  // 2 bytes; C0/C1 are overlong.
      if (left < 2 || (p[1] & 0xC0) != 0x80) return false;
      p += 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {  // 3 bytes.
      if (left < 3) return false;
      const uint8_t b1 = p[1];
      uint8_t lo = 0x80, hi = 0xBF;
      if (b0 == 0xE0) lo = 0xA0;  // Overlong.
      if (b0 == 0xED) hi = 0x9F;  // Surrogates U+D800..U+DFFF.
      if (b1 < lo || b1 > hi || (p[2] & 0xC0) != 0x80) return false;
      p += 3;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {  // 4 bytes.
      if (left < 4) return false;
      const uint8_t b1 = p[1];
      uint8_t lo = 0x80, hi = 0xBF;
      if (b0 == 0xF0) lo = 0x90;  // Overlong.
      if (b0 == 0xF4) hi = 0x8F;  // Above U+10FFFF.
      if (b1 < lo || b1 > hi || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return false;
      p += 4;
    } else {
      return false;  // Continuation byte, C0/C1, or F5..FF.
    }
  }
  return true;
}

}  // namespace shardmq::mqtt
