// Writes the seed corpus for mqtt_decoder_fuzz: one file per sample packet
// (every type x every version, with properties for MQTT 5), encoded by our
// own encoder and prefixed with the fuzz target's control byte. For the
// "before CONNECT" mode each file is a CONNECT followed by the packet.
//
// Usage: mqtt_fuzz_corpus_gen <output-directory>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "mqtt/encoder.h"
#include "sample_packets.h"

namespace {

using namespace shardmq::mqtt;

std::vector<uint8_t> EncodeOne(const Packet& p, ProtocolVersion v) {
  std::vector<uint8_t> out(EncodedSize(p, v));
  Encode(p, v, absl::MakeSpan(out));
  return out;
}

bool WriteFile(const std::string& path, const std::vector<uint8_t>& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  return std::fclose(f) == 0 && ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <output-directory>\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  struct Mode {
    ProtocolVersion version;
    uint8_t control;  // Version bits of the fuzz target's control byte.
    const char* name;
  };
  const Mode modes[] = {{ProtocolVersion::kV31, 1, "v31"},
                        {ProtocolVersion::kV311, 2, "v311"},
                        {ProtocolVersion::kV5, 3, "v5"}};
  int files = 0;
  for (const Mode& m : modes) {
    const auto samples = shardmq::mqtt::testing::SamplePackets(m.version);
    std::vector<uint8_t> connect;
    for (const auto& s : samples) {
      if (std::holds_alternative<Connect>(s.packet)) {
        connect = EncodeOne(s.packet, m.version);
        break;
      }
    }
    std::vector<uint8_t> all = {static_cast<uint8_t>(m.control | (7 << 2))};  // Byte by byte.
    for (const auto& s : samples) {
      const std::vector<uint8_t> bytes = EncodeOne(s.packet, m.version);
      // Version known, whole input.
      std::vector<uint8_t> known = {m.control};
      known.insert(known.end(), bytes.begin(), bytes.end());
      // Before CONNECT: the CONNECT, then the packet, in random chunks.
      std::vector<uint8_t> fresh = {static_cast<uint8_t>(0 | (2 << 2))};
      fresh.insert(fresh.end(), connect.begin(), connect.end());
      if (!std::holds_alternative<Connect>(s.packet))
        fresh.insert(fresh.end(), bytes.begin(), bytes.end());
      all.insert(all.end(), bytes.begin(), bytes.end());
      const std::string base = dir + "/" + m.name + "_" + s.name;
      if (!WriteFile(base, known) || !WriteFile(base + "_after_connect", fresh)) {
        std::perror(base.c_str());
        return 1;
      }
      files += 2;
    }
    if (!WriteFile(dir + "/" + m.name + "_all_bytewise", all)) {
      std::perror(dir.c_str());
      return 1;
    }
    ++files;
  }
  std::printf("wrote %d files to %s\n", files, dir.c_str());
  return 0;
}
