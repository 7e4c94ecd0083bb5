// The on-disk format of a shard's log: segment files of checksummed records.
//
//   segment file = header, then records back to back
//   header (24 bytes) = "SHMQLOG1" | format version u32 | shard u32 | first sequence u64
//   record = body length u32 | masked CRC-32C of the body u32 | body
//   body   = record type u8 | payload
// Integers are little-endian. A record is whole or it is not there: recovery
// keeps the records before the first one whose length or checksum is wrong.
// A bad record with nothing valid after it is a torn tail (the broker died
// mid-write) and is cut off; a bad record followed by good ones is damage in
// the middle of the log, which start-up refuses to paper over (issue 9).
//
// Record types:
//   0x00        never used (a zeroed region must not read as a record type)
//   0x01-0x0F   reserved for the store itself; recovery consumes them and
//               never hands them to the caller:
//                 0x01 SNAPSHOT_BEGIN  empty payload; always the first record
//                                      of a segment (log_writer.h)
//                 0x02 SNAPSHOT_END    payload = the BEGIN's sequence, u64 LE
//                 0x03-0x0F            free; recovery skips them
//   0x10-0xFF   the broker's: retained messages 0x10/0x11
//               (broker/retained_records.h), sessions 0x20-0x2F
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace shardmq::store {

inline constexpr char kSegmentMagic[8] = {'S', 'H', 'M', 'Q', 'L', 'O', 'G', '1'};
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr size_t kSegmentHeaderSize = 24;
inline constexpr size_t kRecordHeaderSize = 8;
// Larger bodies are taken for garbage: no record holds more than one MQTT
// packet's worth (256 MiB) plus its session fields.
inline constexpr uint32_t kMaxRecordBody = (256u << 20) + (1u << 20);

// Store record types (see the comment at the top).
inline constexpr uint8_t kRecordSnapshotBegin = 0x01;
inline constexpr uint8_t kRecordSnapshotEnd = 0x02;
// Types below this are the store's own.
inline constexpr uint8_t kFirstUserRecordType = 0x10;
inline constexpr size_t kSnapshotEndPayloadSize = 8;

struct SegmentHeader {
  uint32_t shard = 0;
  // Sequence number of the segment's first record: segments sort by it, and
  // a snapshot names the sequence it covers up to.
  uint64_t first_sequence = 0;
};

// Appends the 24 header bytes to `out`.
void AppendSegmentHeader(const SegmentHeader& header, std::string& out);
// Reads a segment header; the error says what is wrong (short, not a
// shardmq log, a newer format).
absl::StatusOr<SegmentHeader> ParseSegmentHeader(absl::Span<const uint8_t> bytes);

// Appends one framed record to `out`.
void AppendRecord(uint8_t type, absl::Span<const uint8_t> payload, std::string& out);
// The bytes a record with this payload takes on disk.
constexpr size_t FramedSize(size_t payload_size) { return kRecordHeaderSize + 1 + payload_size; }

struct Record {
  uint8_t type = 0;
  absl::Span<const uint8_t> payload;
  // Offset of the record's first byte, counted like ScanRecords' base_offset.
  uint64_t offset = 0;
  // RecoverSegments: the first sequence (name) of the segment it is in, so a
  // caller can find the record again (a spilled message, LogWriter::Located).
  uint64_t segment = 0;
};

enum class ScanEnd {
  kClean,     // every byte belonged to a good record
  kTornTail,  // a bad or partial record with nothing good after it
  kCorrupt,   // a bad record followed by good ones: damage in the middle
};

struct ScanResult {
  ScanEnd end = ScanEnd::kClean;
  // Bytes from the start of the scanned span through the last good record
  // before the first bad one: where a torn tail is cut.
  uint64_t good_bytes = 0;
  size_t records = 0;
  // kTornTail / kCorrupt: the first bad record's offset (base_offset added)
  // and what is wrong with it ("checksum mismatch", ...).
  uint64_t bad_offset = 0;
  std::string reason;
};

// The offset of the first good record starting after `from` in `bytes`, or
// bytes.size() when there is none. Recovery uses it to tell damage in the
// middle from a torn tail, and to salvage the records past damage.
size_t FindGoodRecordAfter(absl::Span<const uint8_t> bytes, size_t from);

// Calls `visit` for each good record of `bytes` (records only, no segment
// header), in order, up to the first bad one. `base_offset` is added to the
// offsets reported, so they can name a position in a file.
ScanResult ScanRecords(absl::Span<const uint8_t> bytes, uint64_t base_offset,
                       absl::FunctionRef<void(const Record&)> visit);

}  // namespace shardmq::store
