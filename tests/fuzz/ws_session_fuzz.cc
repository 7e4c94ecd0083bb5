// libFuzzer target for WebSocket framing (shard/ws_session.h): the bytes a
// client sends after (or instead of) the Upgrade request, fed once whole and
// once in fuzzer-chosen pieces read through fuzzer-chosen buffer sizes, the
// way receives and TLS records cut them. Besides the sanitizers' checks the
// two runs must agree on everything the session yields: the MQTT bytes, the
// output toward the client (101 answer, pongs, close frames), and whether
// and why it ended. Framing must not depend on where the network cut.
//
// Input: byte 0 bit 0 set: the stream starts with a valid Upgrade request
// (so most inputs reach the frame decoder); byte 1 % 16: how many plan bytes
// follow (piece and buffer sizes, cycled); the rest is the stream.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/types/span.h"
#include "shard/ws_session.h"

namespace {

constexpr char kRequest[] =
    "GET /mqtt HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Protocol: mqtt\r\n\r\n";

struct Outcome {
  std::string mqtt;    // what Read() yielded
  std::string output;  // what DrainOutput() yielded
  bool over = false;
  std::string error;
  bool operator==(const Outcome&) const = default;
};

// Feeds `stream` in pieces of plan[i] + 1 bytes (whole when `plan` is
// empty) and reads through buffers of plan[j] + 1 bytes, as the reactor does:
// after each piece, Read() until it wants more or the session ends.
Outcome Run(const std::string& stream, absl::Span<const uint8_t> plan) {
  Outcome outcome;
  std::unique_ptr<shardmq::shard::WsSession> session =
      shardmq::shard::WsSession::Create(std::make_shared<shardmq::shard::WsConfig>());
  if (session == nullptr) std::abort();
  // A CONNACK-sized write before the handshake: held, then framed.
  const uint8_t early[] = {0x20, 0x02, 0x00, 0x00};
  session->Write(early);
  uint8_t buffer[256];
  size_t pos = 0;
  size_t step = 0;
  while (pos < stream.size() && !session->over()) {
    const size_t piece = plan.empty() ? stream.size() : plan[step++ % plan.size()] % 64 + size_t{1};
    const size_t n = std::min(piece, stream.size() - pos);
    session->Feed(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(stream.data()) + pos, n));
    pos += n;
    for (;;) {
      const size_t room = plan.empty() ? sizeof(buffer) : plan[step++ % plan.size()] % 32 + 1;
      const int got = session->Read(absl::MakeSpan(buffer, room));
      if (got > static_cast<int>(room)) std::abort();  // wrote past what it was given
      if (got <= 0) break;
      outcome.mqtt.append(reinterpret_cast<const char*>(buffer), static_cast<size_t>(got));
    }
    session->DrainOutput([&](absl::Span<const uint8_t> bytes) {
      outcome.output.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    });
  }
  outcome.over = session->over();
  outcome.error = session->error();
  if (outcome.over && outcome.error.empty() && !session->closed_by_peer()) std::abort();
  return outcome;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t plan_size = std::min<size_t>(data[1] % 16, size - 2);
  const absl::Span<const uint8_t> plan(data + 2, plan_size);
  std::string stream = (data[0] & 1) != 0 ? kRequest : "";
  stream.append(reinterpret_cast<const char*>(data + 2 + plan_size), size - 2 - plan_size);
  const Outcome whole = Run(stream, {});
  if (plan.empty()) return 0;
  if (!(Run(stream, plan) == whole)) std::abort();  // framing depended on the cuts
  return 0;
}
