#include "broker/spill_read.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "store/log_format.h"
#include "store/segment_recovery.h"

namespace shardmq::broker {

std::string SpilledSegmentPath(const std::string& log_directory, uint64_t segment) {
  return log_directory + "/" + store::SegmentFileName(segment);
}

absl::StatusOr<SessionRecord> ParseSpilledRecord(absl::Span<const uint8_t> framed,
                                                 const SpillLocation& where) {
  auto where_text = [&] {
    return absl::StrFormat("segment %s offset %d", store::SegmentFileName(where.segment),
                           where.offset);
  };
  if (framed.size() != where.length) {
    return absl::DataLossError(
        absl::StrFormat("%s: read %d of %d bytes", where_text(), framed.size(), where.length));
  }
  store::Record found;
  size_t records = 0;
  const store::ScanResult scan = store::ScanRecords(framed, 0, [&](const store::Record& record) {
    if (records++ == 0) found = record;
  });
  if (scan.end != store::ScanEnd::kClean || records != 1) {
    return absl::DataLossError(
        absl::StrFormat("%s: not one whole record (%s)", where_text(),
                        scan.reason.empty() ? "trailing bytes" : scan.reason));
  }
  if (found.type != kRecordMessage) {
    return absl::DataLossError(
        absl::StrFormat("%s: a record of type %#x, not a message", where_text(), found.type));
  }
  absl::StatusOr<SessionRecord> decoded = DecodeSessionRecord(found.type, found.payload);
  if (!decoded.ok()) return decoded.status();
  if (decoded->body != where.body) {
    return absl::DataLossError(
        absl::StrFormat("%s: message %d, not %d", where_text(), decoded->body, where.body));
  }
  return decoded;
}

absl::StatusOr<std::string> ReadSpilledRecord(const std::string& data_dir,
                                              const SpillLocation& where) {
  const std::string path =
      SpilledSegmentPath(absl::StrFormat("%s/shard-%d", data_dir, where.directory), where.segment);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::DataLossError(absl::StrFormat("cannot open %s: %s", path, std::strerror(errno)));
  }
  std::string bytes(where.length, '\0');
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::pread(fd, bytes.data() + done, bytes.size() - done,
                              static_cast<off_t>(where.offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  bytes.resize(done);
  absl::StatusOr<SessionRecord> parsed = ParseSpilledRecord(
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), where);
  if (!parsed.ok()) {
    return absl::Status(parsed.status().code(),
                        absl::StrFormat("%s: %s", path, parsed.status().message()));
  }
  return bytes;
}

}  // namespace shardmq::broker
