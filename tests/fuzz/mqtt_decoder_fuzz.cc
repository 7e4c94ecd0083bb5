// libFuzzer target for the MQTT decoder. Input layout: one control byte,
// then the byte stream a client would send.
//   bits 0-1: connection version (0 = before CONNECT, 1 = 3.1, 2 = 3.1.1, 3 = 5.0)
//   bits 2-4: chunking (0 = whole, 7 = one byte at a time, else pseudo-random sizes)
//   bit 5:    small maximum packet size (64 bytes)
//   bit 6:    validate UTF-8 payloads
// Checks, aborting on any mismatch:
//  1. StreamDecoder over the chunks yields exactly the packets and the final
//     status that DecodePacket yields over the contiguous buffer;
//  2. every accepted packet re-encodes (EncodedSize == bytes written), the
//     encoding decodes to an equal packet, and re-encoding that is
//     byte-identical.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/stream_decoder.h"

namespace {

using namespace shardmq::mqtt;

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "mqtt_decoder_fuzz: %s\n", what);
  std::abort();
}

// The version `packet` must be encoded in (CONNECT carries its own).
ProtocolVersion VersionFor(const Packet& packet, ProtocolVersion connection) {
  if (const Connect* c = std::get_if<Connect>(&packet)) return c->version;
  return connection;
}

// Encodes `packet`, checks the round trip, and returns the encoding.
std::vector<uint8_t> CheckRoundTrip(const Packet& packet, ProtocolVersion v) {
  std::vector<uint8_t> bytes(EncodedSize(packet, v));
  if (bytes.empty()) Fail("EncodedSize returned 0 for a decoded packet");
  if (Encode(packet, v, absl::MakeSpan(bytes)) != bytes.size()) Fail("Encode size mismatch");
  DecodeOptions o;
  o.version = std::holds_alternative<Connect>(packet) ? ProtocolVersion::kUnknown : v;
  Packet again;
  const DecodeResult r = DecodePacket(bytes, o, &again);
  if (r.status != DecodeStatus::kOk) {
    std::fprintf(stderr, "re-decode failed: %s\n", r.what ? r.what : "need more");
    Fail("re-encoded packet does not decode");
  }
  if (r.consumed != bytes.size()) Fail("re-decode consumed a different size");
  if (!(again == packet)) Fail("re-decoded packet differs");
  std::vector<uint8_t> bytes2(EncodedSize(again, v));
  if (Encode(again, v, absl::MakeSpan(bytes2)) != bytes2.size() || bytes2 != bytes) {
    Fail("re-encoding is not byte-identical");
  }
  return bytes;
}

struct Outcome {
  std::vector<std::vector<uint8_t>> packets;  // Re-encodings, in order.
  DecodeStatus status = DecodeStatus::kNeedMore;
  ReasonCode reason = ReasonCode::kSuccess;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t control = data[0];
  const absl::Span<const uint8_t> input(data + 1, size - 1);
  static constexpr ProtocolVersion kVersions[] = {ProtocolVersion::kUnknown, ProtocolVersion::kV31,
                                                  ProtocolVersion::kV311, ProtocolVersion::kV5};
  DecodeOptions options;
  options.version = kVersions[control & 0x03];
  if (control & 0x20) options.max_packet_size = 64;
  options.validate_utf8_payload = (control & 0x40) != 0;
  const unsigned chunking = (control >> 2) & 0x07;

  // Reference: contiguous decoding.
  Outcome whole;
  {
    DecodeOptions o = options;
    size_t pos = 0;
    Packet packet;
    while (pos < input.size()) {
      const DecodeResult r = DecodePacket(input.subspan(pos), o, &packet);
      if (r.status == DecodeStatus::kNeedMore) break;
      if (r.status == DecodeStatus::kError) {
        if (r.what == nullptr) Fail("error without description");
        if (r.consumed == 0 || r.consumed > input.size() - pos) Fail("bad consumed on error");
        whole.status = DecodeStatus::kError;
        whole.reason = r.reason;
        break;
      }
      if (r.consumed == 0 || r.consumed > input.size() - pos) Fail("bad consumed");
      if (const Connect* c = std::get_if<Connect>(&packet);
          c != nullptr && o.version == ProtocolVersion::kUnknown) {
        o.version = c->version;
      }
      whole.packets.push_back(CheckRoundTrip(packet, VersionFor(packet, o.version)));
      pos += r.consumed;
    }
  }

  // Streaming over chunks.
  Outcome streamed;
  {
    StreamDecoder decoder(options);
    uint32_t rng = 0x9E3779B9u ^ static_cast<uint32_t>(size) ^ (control * 2654435761u);
    size_t pos = 0;
    while (pos < input.size()) {
      size_t n;
      if (chunking == 0) {
        n = input.size() - pos;
      } else if (chunking == 7) {
        n = 1;
      } else {
        rng = rng * 1664525u + 1013904223u;
        n = 1 + (rng >> 8) % (size_t{1} << (chunking * 2));
      }
      n = std::min(n, input.size() - pos);
      // A fresh copy, freed right after: views must not outlive the call.
      std::vector<uint8_t> chunk(input.begin() + pos, input.begin() + pos + n);
      const DecodeResult r = decoder.Feed(chunk, [&](const Packet& p) {
        streamed.packets.push_back(CheckRoundTrip(p, VersionFor(p, decoder.protocol_version())));
        return true;
      });
      if (r.status == DecodeStatus::kError) {
        streamed.status = DecodeStatus::kError;
        streamed.reason = r.reason;
        break;
      }
      if (r.status != DecodeStatus::kNeedMore || r.consumed != n) Fail("chunk not consumed");
      pos += n;
    }
  }

  if (whole.packets != streamed.packets) Fail("streamed packets differ from contiguous decode");
  if (whole.status != streamed.status || whole.reason != streamed.reason) {
    Fail("streamed outcome differs from contiguous decode");
  }
  return 0;
}
