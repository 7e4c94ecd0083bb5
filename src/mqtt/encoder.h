// Encoding of MQTT control packets into caller-provided buffers. Sizes are
// computed exactly first (EncodedSize), then Encode writes without any
// allocation. PUBLISH can be encoded without its payload
// (EncodePublishHeader) so the broker can send a shared payload with writev.
//
// Example:
//   std::array<uint8_t, 64> buf;
//   size_t n = Encode(PubAck{.type = PacketType::kPuback, .packet_id = 7},
//                     ProtocolVersion::kV5, absl::MakeSpan(buf));
//   // n == 4 (short form: reason Success, no properties)
//
// The encoder trusts its input: callers build valid packets (strings at most
// 65535 bytes and valid UTF-8, QoS <= 2, packet ids non-zero where needed).
// Fields a version lacks are ignored (e.g. properties for 3.1.1). CONNECT is
// always encoded in its own `version` (3.1 writes "MQIsdp"/3).
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/types/span.h"
#include "mqtt/packet.h"
#include "mqtt/protocol_version.h"

namespace shardmq::mqtt {

// Exact encoded size of `packet` in `version`, fixed header included, or 0
// when the packet cannot be encoded (remaining length above 268,435,455).
size_t EncodedSize(const Packet& packet, ProtocolVersion version);
size_t EncodedSize(const Connect& packet, ProtocolVersion version);
size_t EncodedSize(const Connack& packet, ProtocolVersion version);
size_t EncodedSize(const Publish& packet, ProtocolVersion version);
size_t EncodedSize(const PubAck& packet, ProtocolVersion version);
size_t EncodedSize(const Subscribe& packet, ProtocolVersion version);
size_t EncodedSize(const Suback& packet, ProtocolVersion version);
size_t EncodedSize(const Unsubscribe& packet, ProtocolVersion version);
size_t EncodedSize(const Unsuback& packet, ProtocolVersion version);
size_t EncodedSize(const PingReq& packet, ProtocolVersion version);
size_t EncodedSize(const PingResp& packet, ProtocolVersion version);
size_t EncodedSize(const Disconnect& packet, ProtocolVersion version);
size_t EncodedSize(const Auth& packet, ProtocolVersion version);

// Writes `packet` at the front of `out`; returns the bytes written (equal to
// EncodedSize), or 0 when `out` is too small or the packet cannot be encoded.
size_t Encode(const Packet& packet, ProtocolVersion version, absl::Span<uint8_t> out);
size_t Encode(const Connect& packet, ProtocolVersion version, absl::Span<uint8_t> out);
size_t Encode(const Connack& packet, ProtocolVersion version, absl::Span<uint8_t> out);
size_t Encode(const Publish& packet, ProtocolVersion version, absl::Span<uint8_t> out);
size_t Encode(const PubAck& packet, ProtocolVersion version, absl::Span<uint8_t> out);
size_t Encode(const Subscribe& packet, ProtocolVersion version, absl::Span<uint8_t> out);
size_t Encode(const Suback& packet, ProtocolVersion version, absl::Span<uint8_t> out);
size_t Encode(const Unsubscribe& packet, ProtocolVersion version, absl::Span<uint8_t> out);
size_t Encode(const Unsuback& packet, ProtocolVersion version, absl::Span<uint8_t> out);
size_t Encode(const PingReq& packet, ProtocolVersion version, absl::Span<uint8_t> out);
size_t Encode(const PingResp& packet, ProtocolVersion version, absl::Span<uint8_t> out);
size_t Encode(const Disconnect& packet, ProtocolVersion version, absl::Span<uint8_t> out);
size_t Encode(const Auth& packet, ProtocolVersion version, absl::Span<uint8_t> out);

// Size of a PUBLISH without its payload: fixed header (whose remaining
// length counts packet.payload.size()), topic, packet id and properties.
// 0 when the packet cannot be encoded.
size_t PublishHeaderSize(const Publish& packet, ProtocolVersion version);

// Writes everything of a PUBLISH except the payload bytes; the caller sends
// packet.payload right after (e.g. as a second iovec). Only
// packet.payload.size() is read. Returns the bytes written or 0 when `out`
// is too small.
size_t EncodePublishHeader(const Publish& packet, ProtocolVersion version, absl::Span<uint8_t> out);

}  // namespace shardmq::mqtt
