#include "store/segment_recovery.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace shardmq::store {
namespace {

namespace fs = std::filesystem;

absl::StatusOr<std::string> ReadWholeFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::UnavailableError(
        absl::StrFormat("cannot open %s: %s", path.string(), std::strerror(errno)));
  }
  std::string contents((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return absl::UnavailableError(absl::StrFormat("cannot read %s", path.string()));
  return contents;
}

absl::Status CutFile(const fs::path& path, uint64_t length) {
  // truncate(2) then fsync: the cut must be durable before new records are
  // appended after it, or a second crash could bring the torn bytes back
  // between good records.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(length)) != 0 || ::fsync(fd) != 0) {
    const int saved = errno;
    if (fd >= 0) ::close(fd);
    return absl::UnavailableError(
        absl::StrFormat("cannot cut the torn tail of %s: %s", path.string(), std::strerror(saved)));
  }
  ::close(fd);
  return absl::OkStatus();
}

std::string Damage(const fs::path& path, uint64_t offset, absl::string_view reason) {
  return absl::StrFormat("%s: offset %d: %s", path.string(), offset, reason);
}

absl::Span<const uint8_t> AsBytes(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// Whether the segment's first record is a whole SNAPSHOT_BEGIN, reading
// only the 33 bytes that can hold it.
bool StartsWithSnapshot(const SegmentFile& segment) {
  constexpr size_t kPeek = kSegmentHeaderSize + FramedSize(0);
  uint8_t buffer[kPeek];
  const int fd = ::open(segment.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const ssize_t got = ::pread(fd, buffer, kPeek, 0);
  ::close(fd);
  if (got != static_cast<ssize_t>(kPeek)) return false;
  absl::StatusOr<SegmentHeader> header = ParseSegmentHeader(absl::MakeConstSpan(buffer, kPeek));
  if (!header.ok() || header->first_sequence != segment.first_sequence) return false;
  bool begin = false;
  ScanRecords(absl::MakeConstSpan(buffer + kSegmentHeaderSize, FramedSize(0)), 0,
              [&](const Record& record) { begin = record.type == kRecordSnapshotBegin; });
  return begin;
}

bool IsEndOf(const Record& record, uint64_t begin) {
  if (record.type != kRecordSnapshotEnd || record.payload.size() != kSnapshotEndPayloadSize) {
    return false;
  }
  uint64_t named = 0;
  for (int i = kSnapshotEndPayloadSize - 1; i >= 0; --i) named = (named << 8) | record.payload[i];
  return named == begin;
}

struct SnapshotCheck {
  bool complete = false;
  uint64_t bytes = 0;          // BEGIN through END, when complete
  uint64_t next_sequence = 0;  // after the last good record scanned
};

// Scans the snapshot whose BEGIN starts segments[first] for its END,
// stopping at another BEGIN. Damage is stepped over (replay polices it).
absl::StatusOr<SnapshotCheck> CheckSnapshot(const std::vector<SegmentFile>& segments,
                                            size_t first) {
  SnapshotCheck check;
  const uint64_t begin = segments[first].first_sequence;
  bool stop = false;
  for (size_t i = first; i < segments.size() && !stop; ++i) {
    absl::StatusOr<std::string> contents = ReadWholeFile(segments[i].path);
    if (!contents.ok()) return contents.status();
    const auto bytes = AsBytes(*contents);
    absl::StatusOr<SegmentHeader> header = ParseSegmentHeader(bytes);
    if (!header.ok()) continue;
    uint64_t sequence = header->first_sequence;
    size_t at = kSegmentHeaderSize;
    while (at < bytes.size() && !stop) {
      ScanResult scan = ScanRecords(bytes.subspan(at), at, [&](const Record& record) {
        if (stop) return;
        const uint64_t this_sequence = sequence++;
        check.next_sequence = sequence;
        if (record.type == kRecordSnapshotBegin && this_sequence != begin) {
          stop = true;  // another snapshot began: this one never ended
          return;
        }
        check.bytes += FramedSize(record.payload.size());
        if (IsEndOf(record, begin)) {
          check.complete = true;
          stop = true;
        }
      });
      if (scan.end == ScanEnd::kClean) break;
      at = FindGoodRecordAfter(bytes, scan.bad_offset);
    }
  }
  return check;
}

// Deletes a file and reports it; the directory is synced by the caller.
bool DeleteFile(const std::string& path, RecoveryReport& report) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    report.delete_failures.push_back(absl::StrFormat("%s: %s", path, std::strerror(errno)));
    return false;
  }
  report.deleted.push_back(path);
  return true;
}

absl::Status SyncDirectory(const std::string& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    const int saved = errno;
    if (fd >= 0) ::close(fd);
    return absl::UnavailableError(
        absl::StrFormat("cannot sync log directory %s: %s", directory, std::strerror(saved)));
  }
  ::close(fd);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<SegmentFile>> ListSegmentFiles(const std::string& directory) {
  std::vector<SegmentFile> segments;
  std::error_code error;
  if (!fs::exists(directory, error)) return segments;
  for (const fs::directory_entry& entry : fs::directory_iterator(directory, error)) {
    const std::string name = entry.path().filename().string();
    uint64_t sequence = 0;
    if (name.size() != 24 || name.substr(20) != ".log") continue;
    auto [end, parse_error] = std::from_chars(name.data(), name.data() + 20, sequence);
    if (parse_error != std::errc() || end != name.data() + 20) continue;
    segments.push_back({sequence, entry.path().string()});
  }
  if (error) {
    return absl::UnavailableError(
        absl::StrFormat("cannot list log directory %s: %s", directory, error.message()));
  }
  std::sort(segments.begin(), segments.end(), [](const SegmentFile& a, const SegmentFile& b) {
    return a.first_sequence < b.first_sequence;
  });
  return segments;
}

std::string SegmentFileName(uint64_t first_sequence) {
  return absl::StrFormat("%020d.log", first_sequence);
}

absl::StatusOr<RecoveryReport> RecoverSegments(
    const std::string& directory, const RecoveryOptions& options,
    absl::FunctionRef<absl::Status(const Record&, uint64_t sequence)> visit) {
  absl::StatusOr<std::vector<SegmentFile>> segments = ListSegmentFiles(directory);
  if (!segments.ok()) return segments.status();
  RecoveryReport report;

  // Where replay starts (0: the first segment) and ends (the incomplete
  // snapshot's first segment, or the end).
  size_t start = 0;
  size_t end = segments->size();
  uint64_t tail_next_sequence = 0;
  for (size_t i = segments->size(); i-- > 0;) {
    if (!StartsWithSnapshot((*segments)[i])) continue;
    absl::StatusOr<SnapshotCheck> check = CheckSnapshot(*segments, i);
    if (!check.ok()) return check.status();
    if (check->complete) {
      start = i;
      report.used_snapshot = true;
      report.snapshot_sequence = (*segments)[i].first_sequence;
      report.snapshot_bytes = check->bytes;
      report.segments_skipped = i;
      break;
    }
    // By construction only the newest snapshot can lack its END; if an
    // older one does too, everything from it on is its leftovers.
    end = i;
    tail_next_sequence = std::max(tail_next_sequence, check->next_sequence);
    report.dropped_incomplete_snapshot = true;
    report.incomplete_snapshot_sequence = (*segments)[i].first_sequence;
  }

  // A refusal names the damage and the way out.
  auto refuse = [&](const std::string& what) {
    return absl::DataLossError(absl::StrFormat(
        "damaged log: %s (start with --salvage to keep the readable records)", what));
  };

  for (size_t i = start; i < end; ++i) {
    const SegmentFile& segment = (*segments)[i];
    const bool newest = i + 1 == end;
    absl::StatusOr<std::string> contents = ReadWholeFile(segment.path);
    if (!contents.ok()) return contents.status();
    const auto bytes =
        absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(contents->data()), contents->size());
    absl::StatusOr<SegmentHeader> header = ParseSegmentHeader(bytes);
    if (!header.ok() && newest && bytes.size() < kSegmentHeaderSize) {
      // Created, header never completed: nothing was acknowledged from it.
      report.truncated_file = segment.path;
      report.truncated_bytes = bytes.size();
      std::error_code ignored;
      fs::remove(segment.path, ignored);
      continue;
    }
    if (!header.ok()) {
      if (!options.salvage) return refuse(Damage(segment.path, 0, header.status().message()));
      report.salvaged.push_back(Damage(segment.path, 0, header.status().message()));
      continue;
    }
    if (header->first_sequence != segment.first_sequence ||
        (report.segments > 0 && header->first_sequence < report.next_sequence)) {
      const std::string what =
          Damage(segment.path, 0,
                 absl::StrFormat("first sequence %d overlaps the records before it (next is %d)",
                                 header->first_sequence, report.next_sequence));
      if (!options.salvage) return refuse(what);
      report.salvaged.push_back(what);
      continue;
    }
    ++report.segments;
    uint64_t sequence = header->first_sequence;
    absl::Status visit_error = absl::OkStatus();
    size_t at = kSegmentHeaderSize;
    while (at < bytes.size()) {
      ScanResult scan = ScanRecords(bytes.subspan(at), at, [&](const Record& record) {
        if (!visit_error.ok()) return;
        const uint64_t this_sequence = sequence++;
        report.bytes += FramedSize(record.payload.size());
        if (record.type < kFirstUserRecordType) return;  // the store's own
        Record located = record;
        located.segment = segment.first_sequence;
        visit_error = visit(located, this_sequence);
        ++report.records;
      });
      if (!visit_error.ok()) return visit_error;
      if (scan.end == ScanEnd::kClean) break;
      const uint64_t bad = scan.bad_offset;
      if (scan.end == ScanEnd::kTornTail && newest) {
        if (absl::Status cut = CutFile(segment.path, bad); !cut.ok()) return cut;
        report.truncated_file = segment.path;
        report.truncated_bytes = bytes.size() - bad;
        break;
      }
      // Damage: a bad record with good ones after it, or a torn tail in a
      // segment that a newer one followed (it was complete when that began).
      const std::string what = Damage(segment.path, bad, scan.reason);
      if (!options.salvage) return refuse(what);
      report.salvaged.push_back(what);
      at = FindGoodRecordAfter(bytes, bad);
    }
    report.next_sequence = sequence;
  }
  // The incomplete snapshot's sequence numbers are not given out again.
  report.next_sequence = std::max(report.next_sequence, tail_next_sequence);

  bool deleted = false;
  // Newest first: until its BEGIN segment goes, a crash here leaves an
  // incomplete snapshot at the tail, which the next recovery drops again.
  for (size_t i = segments->size(); i-- > end;) {
    if (!DeleteFile((*segments)[i].path, report)) {
      return absl::UnavailableError(absl::StrFormat(
          "cannot delete the incomplete snapshot's segment %s; start-up must not append after it",
          report.delete_failures.back()));
    }
    deleted = true;
  }
  if (deleted) {
    // Before anything is appended: the BEGIN must be gone for good first.
    if (absl::Status synced = SyncDirectory(directory); !synced.ok()) return synced;
  }
  const uint64_t keep_from = options.keep_segments_from ? options.keep_segments_from() : UINT64_MAX;
  bool deleted_old = false;
  for (size_t i = 0; i < start; ++i) {
    if ((*segments)[i].first_sequence >= keep_from) break;
    deleted_old |= DeleteFile((*segments)[i].path, report);
  }
  deleted |= deleted_old;
  if (deleted_old) {
    if (absl::Status synced = SyncDirectory(directory); !synced.ok()) {
      report.delete_failures.push_back(std::string(synced.message()));
    }
  }
  return report;
}

}  // namespace shardmq::store
