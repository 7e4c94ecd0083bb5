// The header every benchmark payload starts with: who sent it, its place in
// that publisher's stream, and when it was meant to be sent. Subscribers read
// it back to measure latency and to detect lost, duplicated and reordered
// messages without any shared state between threads.
//
// Layout (little-endian, 24 bytes): magic "SMQB" | publisher id u32 |
// sequence u64 | intended send time u64 (CLOCK_MONOTONIC ns). The rest of
// the payload is filler up to the requested payload size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "absl/types/span.h"

namespace shardmq::bench {

inline constexpr size_t kStampSize = 24;

struct Stamp {
  uint32_t publisher = 0;
  uint64_t sequence = 0;
  uint64_t intended_ns = 0;  // When the message should have left (open loop), or did (closed).

  bool operator==(const Stamp&) const = default;
};

// Writes `stamp` at the front of `payload` (which must hold kStampSize bytes).
void WriteStamp(const Stamp& stamp, absl::Span<uint8_t> payload);

// Reads the stamp back; nullopt when the payload is too short or not ours.
std::optional<Stamp> ReadStamp(absl::Span<const uint8_t> payload);

}  // namespace shardmq::bench
