// Writes seeds for store_log_fuzz: short logs of good records (the
// checksums are a wall random mutation rarely gets over, so the fuzzer starts
// from valid framing and breaks it), whole and cut at a few points.
//
// Usage: store_fuzz_corpus_gen <output-directory>
#include <cstdio>
#include <string>

#include "store/log_format.h"

namespace {

bool WriteFile(const std::string& path, const std::string& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  return std::fclose(f) == 0 && ok;
}

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <output-directory>\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  std::string log;
  for (int i = 0; i < 6; ++i) {
    shardmq::store::AppendRecord(static_cast<uint8_t>(i), Bytes(std::string(i * 5, 'a' + i)), log);
  }
  int written = 0;
  for (size_t cut : {log.size(), log.size() - 3, log.size() / 2, size_t{12}}) {
    if (!WriteFile(dir + "/store-log-" + std::to_string(written++), log.substr(0, cut))) {
      std::perror(dir.c_str());
      return 1;
    }
  }
  return 0;
}
