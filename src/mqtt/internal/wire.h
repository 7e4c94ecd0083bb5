// Private helpers shared by the decoder and the encoder: a bounds-checked
// reader over a byte range and two "sinks" (one counts bytes, one writes
// them) so that each packet layout is written once and used for both the
// exact size computation and the encoding.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "absl/types/span.h"
#include "mqtt/varint.h"

namespace shardmq::mqtt::internal {

// Reads big-endian MQTT data types from [p, end). Every method returns false
// (and consumes nothing) when the range is too short or the data is invalid.
class Reader {
 public:
  Reader(const uint8_t* p, size_t n) : p_(p), end_(p + n) {}
  explicit Reader(absl::Span<const uint8_t> s) : Reader(s.data(), s.size()) {}

  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  bool empty() const { return p_ == end_; }
  const uint8_t* pos() const { return p_; }

  bool U8(uint8_t* v) {
    if (p_ == end_) return false;
    *v = *p_++;
    return true;
  }
  bool U16(uint16_t* v) {
    if (remaining() < 2) return false;
    *v = static_cast<uint16_t>((p_[0] << 8) | p_[1]);
    p_ += 2;
    return true;
  }
  bool U32(uint32_t* v) {
    if (remaining() < 4) return false;
    *v = (uint32_t{p_[0]} << 24) | (uint32_t{p_[1]} << 16) | (uint32_t{p_[2]} << 8) | p_[3];
    p_ += 4;
    return true;
  }
  // Variable Byte Integer; false when truncated or malformed.
  bool Varint(uint32_t* v) {
    size_t len = 0;
    if (DecodeVarint(p_, remaining(), v, &len) != VarintStatus::kOk) return false;
    p_ += len;
    return true;
  }
  bool Bytes(size_t n, absl::Span<const uint8_t>* v) {
    if (remaining() < n) return false;
    *v = absl::Span<const uint8_t>(p_, n);
    p_ += n;
    return true;
  }
  // Two-byte length + bytes (Binary Data).
  bool Binary(absl::Span<const uint8_t>* v) {
    uint16_t len;
    if (remaining() < 2) return false;
    len = static_cast<uint16_t>((p_[0] << 8) | p_[1]);
    if (remaining() - 2 < len) return false;
    *v = absl::Span<const uint8_t>(p_ + 2, len);
    p_ += 2 + len;
    return true;
  }
  // Two-byte length + bytes, not UTF-8 validated.
  bool RawString(std::string_view* v) {
    absl::Span<const uint8_t> b;
    if (!Binary(&b)) return false;
    *v = std::string_view(reinterpret_cast<const char*>(b.data()), b.size());
    return true;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// Property block body sizes computed by the sizing pass, replayed by the
// writing pass so each block is measured once per Encode (a packet has at
// most two blocks: CONNECT properties and Will properties).
struct PropsSizeCache {
  size_t sizes[2] = {0, 0};
  int count = 0;
  int next = 0;
};

// Counts the bytes a layout would write.
struct SizeSink {
  size_t n = 0;
  PropsSizeCache* cache = nullptr;
  void U8(uint8_t) { n += 1; }
  void U16(uint16_t) { n += 2; }
  void U32(uint32_t) { n += 4; }
  void Varint(uint32_t v) { n += VarintSize(v); }
  void Str(std::string_view s) { n += 2 + s.size(); }
  void Bin(absl::Span<const uint8_t> b) { n += 2 + b.size(); }
  void Raw(absl::Span<const uint8_t> b) { n += b.size(); }
};

// Writes a layout at `p` with no bounds checks: callers size the output
// first with SizeSink.
struct WriteSink {
  uint8_t* p;
  PropsSizeCache* cache = nullptr;
  void U8(uint8_t v) { *p++ = v; }
  void U16(uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
    p += 2;
  }
  void U32(uint32_t v) {
    p[0] = static_cast<uint8_t>(v >> 24);
    p[1] = static_cast<uint8_t>(v >> 16);
    p[2] = static_cast<uint8_t>(v >> 8);
    p[3] = static_cast<uint8_t>(v);
    p += 4;
  }
  void Varint(uint32_t v) { p += EncodeVarint(v, p); }
  void Str(std::string_view s) {
    U16(static_cast<uint16_t>(s.size()));
    if (!s.empty()) std::memcpy(p, s.data(), s.size());
    p += s.size();
  }
  void Bin(absl::Span<const uint8_t> b) {
    U16(static_cast<uint16_t>(b.size()));
    Raw(b);
  }
  void Raw(absl::Span<const uint8_t> b) {
    if (!b.empty()) std::memcpy(p, b.data(), b.size());
    p += b.size();
  }
};

}  // namespace shardmq::mqtt::internal
