// Test helper: builds raw MQTT bytes field by field, so malformed packets in
// tests read like the spec's layout tables.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <vector>

#include "mqtt/varint.h"

namespace shardmq::mqtt::testing {

class Bytes {
 public:
  Bytes() = default;
  Bytes(std::initializer_list<uint8_t> raw) : v_(raw) {}

  Bytes& U8(uint8_t b) {
    v_.push_back(b);
    return *this;
  }
  Bytes& U16(uint16_t x) { return U8(static_cast<uint8_t>(x >> 8)).U8(static_cast<uint8_t>(x)); }
  Bytes& U32(uint32_t x) {
    return U16(static_cast<uint16_t>(x >> 16)).U16(static_cast<uint16_t>(x));
  }
  Bytes& Varint(uint32_t x) {
    uint8_t buf[4];
    const size_t n = EncodeVarint(x, buf);
    v_.insert(v_.end(), buf, buf + n);
    return *this;
  }
  // Two-byte length + bytes.
  Bytes& Str(std::string_view s) {
    U16(static_cast<uint16_t>(s.size()));
    v_.insert(v_.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& Raw(std::initializer_list<uint8_t> raw) {
    v_.insert(v_.end(), raw.begin(), raw.end());
    return *this;
  }
  Bytes& Append(const Bytes& other) {
    v_.insert(v_.end(), other.v_.begin(), other.v_.end());
    return *this;
  }
  // Property Length + `props`.
  Bytes& Props(const Bytes& props) {
    return Varint(static_cast<uint32_t>(props.size())).Append(props);
  }

  size_t size() const { return v_.size(); }
  const std::vector<uint8_t>& vec() const { return v_; }
  operator const std::vector<uint8_t>&() const { return v_; }

 private:
  std::vector<uint8_t> v_;
};

// Fixed header byte + Remaining Length + body.
inline std::vector<uint8_t> Pkt(uint8_t first_byte, const Bytes& body) {
  Bytes b;
  b.U8(first_byte).Varint(static_cast<uint32_t>(body.size())).Append(body);
  return b.vec();
}

}  // namespace shardmq::mqtt::testing
