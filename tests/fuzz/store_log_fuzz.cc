// Fuzzes the recovery scan of the store's log (src/store/log_format): the
// bytes a crash or a disk can leave in a segment file. Beyond "no crash, no
// out-of-bounds read" it checks what recovery relies on: the good records
// are exactly the bytes they were framed from, in order, and the scan
// never claims more good bytes than it was given.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "store/log_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shardmq::store;
  const auto bytes = absl::MakeConstSpan(data, size);
  uint64_t expected_offset = 0;
  ScanResult result = ScanRecords(bytes, 0, [&](const Record& record) {
    if (record.offset != expected_offset) std::abort();
    std::string framed;
    AppendRecord(record.type, record.payload, framed);
    if (record.offset + framed.size() > size ||
        framed.compare(0, framed.size(), reinterpret_cast<const char*>(data + record.offset),
                       framed.size()) != 0) {
      std::abort();
    }
    expected_offset += framed.size();
  });
  if (result.good_bytes != expected_offset || result.good_bytes > size) std::abort();
  if ((result.end == ScanEnd::kClean) != (result.good_bytes == size)) std::abort();
  if (result.end != ScanEnd::kClean && result.bad_offset != result.good_bytes) std::abort();
  return 0;
}
