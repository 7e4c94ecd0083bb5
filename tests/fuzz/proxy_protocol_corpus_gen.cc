// Writes seeds for proxy_protocol_fuzz: a few valid PROXY v1 and v2 headers,
// each followed by the start of a CONNECT as a client's stream would be.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace {

using Bytes = std::vector<uint8_t>;

Bytes V2(uint8_t ver_cmd, uint8_t fam, const Bytes& block) {
  Bytes out = {0x0D,
               0x0A,
               0x0D,
               0x0A,
               0x00,
               0x0D,
               0x0A,
               0x51,
               0x55,
               0x49,
               0x54,
               0x0A,
               ver_cmd,
               fam,
               static_cast<uint8_t>(block.size() >> 8),
               static_cast<uint8_t>(block.size())};
  out.insert(out.end(), block.begin(), block.end());
  return out;
}

bool WriteFile(const std::string& path, Bytes bytes) {
  const Bytes connect = {0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3C};
  bytes.insert(bytes.end(), connect.begin(), connect.end());
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  return std::fclose(f) == 0 && ok;
}

Bytes Text(const char* s) { return Bytes(s, s + std::char_traits<char>::length(s)); }

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <output-directory>\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  Bytes inet4 = {203, 0, 113, 7, 10, 0, 0, 1, 0x15, 0xB3, 0x07, 0x5B};
  Bytes inet4_tlv = inet4;
  inet4_tlv.insert(inet4_tlv.end(), {0x02, 0x00, 0x02, 'm', 'q', 0x04, 0x00, 0x00});
  Bytes inet6(36, 0);
  inet6[15] = 1;
  inet6[31] = 1;
  const std::pair<const char*, Bytes> seeds[] = {
      {"proxy_v1_tcp4", Text("PROXY TCP4 203.0.113.7 10.0.0.1 5555 1883\r\n")},
      {"proxy_v1_tcp6", Text("PROXY TCP6 2001:db8::7 ::1 5555 1883\r\n")},
      {"proxy_v1_unknown", Text("PROXY UNKNOWN\r\n")},
      {"proxy_v2_inet4", V2(0x21, 0x11, inet4)},
      {"proxy_v2_inet4_tlv", V2(0x21, 0x11, inet4_tlv)},
      {"proxy_v2_inet6", V2(0x21, 0x21, inet6)},
      {"proxy_v2_local", V2(0x20, 0x00, {})},
      {"proxy_v2_unix", V2(0x21, 0x31, Bytes(216, 0))},
  };
  for (const auto& [name, bytes] : seeds) {
    if (!WriteFile(dir + "/" + name, bytes)) {
      std::perror(name);
      return 1;
    }
  }
  return 0;
}
