#include "stamp.h"

#include <cstring>

#include "base/check.h"

namespace shardmq::bench {
namespace {

constexpr uint8_t kMagic[4] = {'S', 'M', 'Q', 'B'};

// memcpy of native integers: the bench runs both ends on one host, and all
// hosts we run on are little-endian; the static_assert keeps that honest.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__);

}  // namespace

void WriteStamp(const Stamp& stamp, absl::Span<uint8_t> payload) {
  SHARDMQ_CHECK(payload.size() >= kStampSize);
  uint8_t* p = payload.data();
  std::memcpy(p, kMagic, 4);
  std::memcpy(p + 4, &stamp.publisher, 4);
  std::memcpy(p + 8, &stamp.sequence, 8);
  std::memcpy(p + 16, &stamp.intended_ns, 8);
}

std::optional<Stamp> ReadStamp(absl::Span<const uint8_t> payload) {
  if (payload.size() < kStampSize || std::memcmp(payload.data(), kMagic, 4) != 0) {
    return std::nullopt;
  }
  Stamp s;
  std::memcpy(&s.publisher, payload.data() + 4, 4);
  std::memcpy(&s.sequence, payload.data() + 8, 8);
  std::memcpy(&s.intended_ns, payload.data() + 16, 8);
  return s;
}

}  // namespace shardmq::bench
