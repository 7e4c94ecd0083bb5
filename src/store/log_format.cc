#include "store/log_format.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "store/crc32c.h"

namespace shardmq::store {
namespace {

void AppendLittleEndian(uint64_t value, int bytes, std::string& out) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

uint64_t ReadLittleEndian(const uint8_t* p, int bytes) {
  uint64_t value = 0;
  for (int i = bytes - 1; i >= 0; --i) value = (value << 8) | p[i];
  return value;
}

// Why the record at `p` (with `available` bytes from it to the end) is not a
// good one, or "" when it is; `body_length` is set when the header was read.
const char* CheckRecord(const uint8_t* p, size_t available, uint32_t& body_length) {
  body_length = 0;
  if (available < kRecordHeaderSize) return "partial record header";
  body_length = static_cast<uint32_t>(ReadLittleEndian(p, 4));
  if (body_length == 0) return "zero length";
  if (body_length > kMaxRecordBody) return "length beyond the largest record";
  if (body_length > available - kRecordHeaderSize) return "record runs past the end";
  const uint32_t stored = UnmaskCrc(static_cast<uint32_t>(ReadLittleEndian(p + 4, 4)));
  if (Crc32c(0, p + kRecordHeaderSize, body_length) != stored) return "checksum mismatch";
  return "";
}

}  // namespace

size_t FindGoodRecordAfter(absl::Span<const uint8_t> bytes, size_t from) {
  for (size_t at = from + 1; at + kRecordHeaderSize < bytes.size(); ++at) {
    uint32_t length = 0;
    if (*CheckRecord(bytes.data() + at, bytes.size() - at, length) == '\0') return at;
  }
  return bytes.size();
}

void AppendSegmentHeader(const SegmentHeader& header, std::string& out) {
  out.append(kSegmentMagic, sizeof(kSegmentMagic));
  AppendLittleEndian(kFormatVersion, 4, out);
  AppendLittleEndian(header.shard, 4, out);
  AppendLittleEndian(header.first_sequence, 8, out);
}

absl::StatusOr<SegmentHeader> ParseSegmentHeader(absl::Span<const uint8_t> bytes) {
  if (bytes.size() < kSegmentHeaderSize) {
    return absl::DataLossError(absl::StrFormat("segment header is %d bytes, shorter than %d",
                                               bytes.size(), kSegmentHeaderSize));
  }
  if (std::memcmp(bytes.data(), kSegmentMagic, sizeof(kSegmentMagic)) != 0) {
    return absl::DataLossError("not a shardmq log segment (bad magic)");
  }
  const uint32_t version = static_cast<uint32_t>(ReadLittleEndian(bytes.data() + 8, 4));
  if (version != kFormatVersion) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "log format version %d; this shardmq reads version %d", version, kFormatVersion));
  }
  SegmentHeader header;
  header.shard = static_cast<uint32_t>(ReadLittleEndian(bytes.data() + 12, 4));
  header.first_sequence = ReadLittleEndian(bytes.data() + 16, 8);
  return header;
}

void AppendRecord(uint8_t type, absl::Span<const uint8_t> payload, std::string& out) {
  const uint32_t body_length = static_cast<uint32_t>(payload.size() + 1);
  uint32_t crc = Crc32c(0, &type, 1);
  crc = Crc32c(crc, payload.data(), payload.size());
  AppendLittleEndian(body_length, 4, out);
  AppendLittleEndian(MaskCrc(crc), 4, out);
  out.push_back(static_cast<char>(type));
  out.append(reinterpret_cast<const char*>(payload.data()), payload.size());
}

ScanResult ScanRecords(absl::Span<const uint8_t> bytes, uint64_t base_offset,
                       absl::FunctionRef<void(const Record&)> visit) {
  ScanResult result;
  size_t at = 0;
  while (at < bytes.size()) {
    uint32_t body_length = 0;
    const char* problem = CheckRecord(bytes.data() + at, bytes.size() - at, body_length);
    if (*problem != '\0') {
      result.end =
          FindGoodRecordAfter(bytes, at) < bytes.size() ? ScanEnd::kCorrupt : ScanEnd::kTornTail;
      result.bad_offset = base_offset + at;
      result.reason = problem;
      break;
    }
    const uint8_t* body = bytes.data() + at + kRecordHeaderSize;
    visit(Record{.type = body[0],
                 .payload = absl::MakeConstSpan(body + 1, body_length - 1),
                 .offset = base_offset + at});
    ++result.records;
    at += kRecordHeaderSize + body_length;
    result.good_bytes = at;
  }
  return result;
}

}  // namespace shardmq::store
