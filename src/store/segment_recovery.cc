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

struct SegmentFile {
  uint64_t name_sequence = 0;
  fs::path path;
};

// The segment files of `directory`, oldest first. Other files are left
// alone (an operator's notes, a snapshot written beside the log).
absl::StatusOr<std::vector<SegmentFile>> ListSegments(const std::string& directory) {
  std::vector<SegmentFile> segments;
  std::error_code error;
  if (!fs::exists(directory, error)) return segments;
  for (const fs::directory_entry& entry : fs::directory_iterator(directory, error)) {
    const std::string name = entry.path().filename().string();
    uint64_t sequence = 0;
    if (name.size() != 24 || name.substr(20) != ".log") continue;
    auto [end, parse_error] = std::from_chars(name.data(), name.data() + 20, sequence);
    if (parse_error != std::errc() || end != name.data() + 20) continue;
    segments.push_back({sequence, entry.path()});
  }
  if (error) {
    return absl::UnavailableError(
        absl::StrFormat("cannot list log directory %s: %s", directory, error.message()));
  }
  std::sort(segments.begin(), segments.end(), [](const SegmentFile& a, const SegmentFile& b) {
    return a.name_sequence < b.name_sequence;
  });
  return segments;
}

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

}  // namespace

std::string SegmentFileName(uint64_t first_sequence) {
  return absl::StrFormat("%020d.log", first_sequence);
}

absl::StatusOr<RecoveryReport> RecoverSegments(
    const std::string& directory, const RecoveryOptions& options,
    absl::FunctionRef<absl::Status(const Record&, uint64_t sequence)> visit) {
  absl::StatusOr<std::vector<SegmentFile>> segments = ListSegments(directory);
  if (!segments.ok()) return segments.status();
  RecoveryReport report;
  // A refusal names the damage and the way out.
  auto refuse = [&](const std::string& what) {
    return absl::DataLossError(absl::StrFormat(
        "damaged log: %s (start with --salvage to keep the readable records)", what));
  };

  for (size_t i = 0; i < segments->size(); ++i) {
    const SegmentFile& segment = (*segments)[i];
    const bool newest = i + 1 == segments->size();
    absl::StatusOr<std::string> contents = ReadWholeFile(segment.path);
    if (!contents.ok()) return contents.status();
    const auto bytes =
        absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(contents->data()), contents->size());
    absl::StatusOr<SegmentHeader> header = ParseSegmentHeader(bytes);
    if (!header.ok() && newest && bytes.size() < kSegmentHeaderSize) {
      // Created, header never completed: nothing was acknowledged from it.
      report.truncated_file = segment.path.string();
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
    if (header->first_sequence != segment.name_sequence ||
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
        visit_error = visit(record, sequence++);
        ++report.records;
        report.bytes += FramedSize(record.payload.size());
      });
      if (!visit_error.ok()) return visit_error;
      if (scan.end == ScanEnd::kClean) break;
      const uint64_t bad = scan.bad_offset;
      if (scan.end == ScanEnd::kTornTail && newest) {
        if (absl::Status cut = CutFile(segment.path, bad); !cut.ok()) return cut;
        report.truncated_file = segment.path.string();
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
  return report;
}

}  // namespace shardmq::store
