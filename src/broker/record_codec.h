// Byte-level helpers shared by the broker's log records (retained_records.h,
// session_records.h): little-endian integers, length-prefixed strings, and
// MQTT 5 property blocks stored without their varint length.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "mqtt/properties.h"

namespace shardmq::broker::records {

inline void PutU8(uint8_t v, std::string& out) { out.push_back(static_cast<char>(v)); }
inline void PutU16(uint16_t v, std::string& out) {
  out.push_back(static_cast<char>(v));
  out.push_back(static_cast<char>(v >> 8));
}
inline void PutU32(uint32_t v, std::string& out) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
inline void PutU64(uint64_t v, std::string& out) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
// u32 length, then the bytes.
inline void PutString(std::string_view s, std::string& out) {
  PutU32(static_cast<uint32_t>(s.size()), out);
  out.append(s);
}
// u32 length, then the property block's body (no varint prefix); length 0
// for nullptr.
void PutProperties(const mqtt::Properties* properties, std::string& out);

inline std::string_view AsString(absl::Span<const uint8_t> bytes) {
  return std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}
inline absl::Span<const uint8_t> AsBytes(std::string_view s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// Reads the above off the front of a span; each call returns false, taking
// nothing, when the span is too short.
class Reader {
 public:
  explicit Reader(absl::Span<const uint8_t> bytes) : bytes_(bytes) {}
  bool U8(uint8_t& v) {
    if (bytes_.size() < 1) return false;
    v = bytes_[0];
    bytes_.remove_prefix(1);
    return true;
  }
  bool U16(uint16_t& v) {
    if (bytes_.size() < 2) return false;
    v = static_cast<uint16_t>(bytes_[0] | (bytes_[1] << 8));
    bytes_.remove_prefix(2);
    return true;
  }
  bool U32(uint32_t& v) {
    if (bytes_.size() < 4) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(bytes_[i]) << (8 * i);
    bytes_.remove_prefix(4);
    return true;
  }
  bool U64(uint64_t& v) {
    if (bytes_.size() < 8) return false;
    v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(bytes_[i]) << (8 * i);
    bytes_.remove_prefix(8);
    return true;
  }
  bool I64(int64_t& v) {
    uint64_t u = 0;
    if (!U64(u)) return false;
    v = static_cast<int64_t>(u);
    return true;
  }
  bool Bytes(size_t n, absl::Span<const uint8_t>& v) {
    if (bytes_.size() < n) return false;
    v = bytes_.subspan(0, n);
    bytes_.remove_prefix(n);
    return true;
  }
  // A PutString or PutProperties field.
  bool Prefixed(absl::Span<const uint8_t>& v) {
    uint32_t n = 0;
    Reader saved = *this;
    if (!U32(n) || !Bytes(n, v)) {
      *this = saved;
      return false;
    }
    return true;
  }
  bool String(std::string_view& v) {
    absl::Span<const uint8_t> bytes;
    if (!Prefixed(bytes)) return false;
    v = AsString(bytes);
    return true;
  }
  absl::Span<const uint8_t> rest() const { return bytes_; }
  bool empty() const { return bytes_.empty(); }

 private:
  absl::Span<const uint8_t> bytes_;
};

// A stored property block body back as mqtt::Properties (views into `body`).
absl::StatusOr<mqtt::Properties> DecodePropertiesBody(absl::Span<const uint8_t> body);

}  // namespace shardmq::broker::records
