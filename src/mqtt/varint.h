// Variable Byte Integer (MQTT 5 section 1.5.5, 3.1.1 section 2.2.3): 7 bits
// per byte, high bit = continuation, at most 4 bytes. Header-only because the
// decoder and encoder call it per packet on the hot path.
#pragma once

#include <cstddef>
#include <cstdint>

namespace shardmq::mqtt {

// Largest value a Variable Byte Integer can carry (0xFF,0xFF,0xFF,0x7F).
inline constexpr uint32_t kMaxVarint = 268'435'455;

// Number of bytes EncodeVarint writes for `value` (1..4). `value` must be
// <= kMaxVarint.
constexpr size_t VarintSize(uint32_t value) {
  return value < 128u ? 1 : value < 16'384u ? 2 : value < 2'097'152u ? 3 : 4;
}

// Writes `value` (<= kMaxVarint) at `out`; returns the bytes written.
inline size_t EncodeVarint(uint32_t value, uint8_t* out) {
  size_t n = 0;
  do {
    uint8_t byte = value & 0x7F;
    value >>= 7;
    if (value != 0) byte |= 0x80;
    out[n++] = byte;
  } while (value != 0);
  return n;
}

// Outcome of DecodeVarint.
enum class VarintStatus : uint8_t {
  kOk,
  kNeedMore,   // The input ends inside the integer.
  kMalformed,  // A 5th byte would be needed, or the encoding is not minimal.
};

// Decodes a Variable Byte Integer from the front of [data, data+size). On kOk
// sets *value and *length (bytes used). A non-minimal encoding (e.g. 0x80
// 0x00 for 0) is Malformed: "The encoded value MUST use the minimum number of
// bytes necessary to represent the value" [MQTT-1.5.5-1].
inline VarintStatus DecodeVarint(const uint8_t* data, size_t size, uint32_t* value,
                                 size_t* length) {
  uint32_t result = 0;
  for (size_t i = 0; i < 4; ++i) {
    if (i == size) return VarintStatus::kNeedMore;
    const uint8_t byte = data[i];
    result |= static_cast<uint32_t>(byte & 0x7F) << (7 * i);
    if ((byte & 0x80) == 0) {
      if (byte == 0 && i > 0) return VarintStatus::kMalformed;
      *value = result;
      *length = i + 1;
      return VarintStatus::kOk;
    }
  }
  return VarintStatus::kMalformed;
}

}  // namespace shardmq::mqtt
