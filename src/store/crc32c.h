// CRC-32C (Castagnoli), the checksum of every record the store writes.
//
// CRC-32C rather than zlib's CRC-32: x86 computes it in hardware (SSE 4.2),
// several bytes per cycle, so checksumming the log costs little next to the
// write itself. Debian 12's abseil predates absl/crc, hence this file.
#pragma once

#include <cstddef>
#include <cstdint>

namespace shardmq::store {

// Extends `crc` (the value returned for the bytes before; 0 to start) over
// `size` bytes at `data`.
uint32_t Crc32c(uint32_t crc, const void* data, size_t size);

// A stored checksum is masked so that a record whose payload itself holds a
// CRC (a log inside a log, a copied record) does not checksum to a fixed
// pattern (the same reason LevelDB masks its record CRCs).
inline uint32_t MaskCrc(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }
inline uint32_t UnmaskCrc(uint32_t masked) {
  uint32_t rotated = masked - 0xa282ead8u;
  return (rotated >> 17) | (rotated << 15);
}

}  // namespace shardmq::store
