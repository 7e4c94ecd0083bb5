// Writes seed inputs for ws_session_fuzz into the directory named by argv[1]:
// client frames as browsers send them (masked), built here by hand, after the
// Upgrade request the target prepends (byte 0 = 1) and a few piece sizes.
// Input layout: see ws_session_fuzz.cc.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace {

// A client frame: FIN + opcode, masked payload.
std::string Frame(uint8_t opcode, const std::string& payload, bool fin = true, bool mask = true) {
  std::string f;
  f.push_back(static_cast<char>((fin ? 0x80 : 0) | opcode));
  const uint8_t m = mask ? 0x80 : 0;
  if (payload.size() < 126) {
    f.push_back(static_cast<char>(m | payload.size()));
  } else {
    f.push_back(static_cast<char>(m | 126));
    f.push_back(static_cast<char>(payload.size() >> 8));
    f.push_back(static_cast<char>(payload.size()));
  }
  const char key[4] = {0x37, 0x7a, 0x21, 0x3d};
  if (mask) f.append(key, 4);
  for (size_t i = 0; i < payload.size(); ++i) {
    f.push_back(static_cast<char>(mask ? payload[i] ^ key[i % 4] : payload[i]));
  }
  return f;
}

// Byte 0: prepend the request; byte 1: plan size; the plan; the frames.
std::string Input(const std::string& plan, const std::string& frames) {
  return std::string(1, '\x01') + static_cast<char>(plan.size()) + plan + frames;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  // An MQTT 3.1.1 CONNECT for client "ws", as the payload most frames carry.
  const std::string connect("\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02ws", 16);
  const std::string cuts("\x00\x03\x01\x07\x02", 5);
  const std::vector<std::pair<std::string, std::string>> seeds = {
      {"ws-binary", Input("", Frame(0x2, connect))},
      {"ws-binary-cut", Input(cuts, Frame(0x2, connect) + Frame(0x2, connect))},
      {"ws-fragmented", Input(cuts, Frame(0x2, connect.substr(0, 5), false) + Frame(0x9, "ping") +
                                        Frame(0x0, connect.substr(5), true))},
      {"ws-large", Input(cuts, Frame(0x2, std::string(300, 'm')))},
      {"ws-ping-close", Input("", Frame(0x9, "p") + Frame(0x8, std::string("\x03\xe8", 2)))},
      {"ws-text", Input("", Frame(0x1, "text"))},
      {"ws-unmasked", Input("", Frame(0x2, connect, true, false))},
      {"ws-bad-request", std::string("\x00\x00GET / HTTP/1.0\r\n\r\n", 20)},
  };
  for (const auto& [name, bytes] : seeds) {
    std::ofstream out(std::string(argv[1]) + "/" + name, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      std::fprintf(stderr, "cannot write %s/%s\n", argv[1], name.c_str());
      return 1;
    }
  }
  return 0;
}
