// Stateless decoding of one MQTT control packet from the front of a
// contiguous buffer. The StreamDecoder (stream_decoder.h) builds the
// per-connection, chunked decoding on top of DecodePacket.
//
// Example:
//   DecodeOptions opts;
//   opts.version = ProtocolVersion::kV311;
//   Packet packet;
//   DecodeResult r = DecodePacket(bytes, opts, &packet);
//   if (r.status == DecodeStatus::kOk) { ... std::get<Publish>(packet) ...; bytes =
//   bytes.subspan(r.consumed); }
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/types/span.h"
#include "mqtt/packet.h"
#include "mqtt/protocol_version.h"
#include "mqtt/reason_code.h"
#include "mqtt/topic_validation.h"

namespace shardmq::mqtt {

// Largest possible MQTT packet: 1 type byte + 4 length bytes + kMaxVarint.
inline constexpr uint32_t kMaxPacketSizeLimit = 268'435'460;

// How to decode. Cheap to copy.
struct DecodeOptions {
  // The connection's version. kUnknown (before CONNECT): only CONNECT is
  // accepted, anything else is a Protocol Error [MQTT-3.1.0-1]. CONNECT is
  // always decoded with the version named in the packet itself.
  ProtocolVersion version = ProtocolVersion::kUnknown;
  // Largest accepted packet, whole packet including the fixed header (the
  // MQTT 5 "Maximum Packet Size" sense). Larger -> kPacketTooLarge, reported
  // as soon as the fixed header has been read.
  uint32_t max_packet_size = kMaxPacketSizeLimit;
  // Limits for topic names and filters in PUBLISH/SUBSCRIBE/UNSUBSCRIBE/Will.
  TopicLimits topic_limits;
  // When a PUBLISH or Will has Payload Format Indicator 1, check that the
  // payload is valid UTF-8 (else kPayloadFormatInvalid). Off by default: the
  // spec lets the receiver choose (3.3.2.3.2).
  bool validate_utf8_payload = false;
  // Reject a SUBSCRIBE whose topic filter is syntactically invalid. A broker
  // turns this off and refuses such filters one by one in SUBACK (0x80 in
  // 3.1.1, 0x8F in MQTT 5), so one bad filter does not cost the connection;
  // the filter is still a well-formed UTF-8 string.
  bool validate_subscribe_filters = true;
};

// Outcome of a decode call.
enum class DecodeStatus : uint8_t {
  kOk,        // A packet was decoded; `consumed` bytes belong to it.
  kNeedMore,  // The input holds only part of a packet; nothing consumed.
  kError,     // The input is not acceptable; close the connection.
};

// Result of DecodePacket / StreamDecoder::Feed.
struct DecodeResult {
  DecodeStatus status = DecodeStatus::kNeedMore;
  // kOk: size of the decoded packet. kError: bytes up to the end of the bad
  // packet when its length is known, else the bytes examined. kNeedMore: 0.
  size_t consumed = 0;
  // kError: why. kMalformedPacket, kProtocolError, kPacketTooLarge,
  // kUnsupportedProtocolVersion, kClientIdentifierNotValid,
  // kTopicNameInvalid, kTopicFilterInvalid, kTopicAliasInvalid,
  // kPayloadFormatInvalid.
  ReasonCode reason = ReasonCode::kSuccess;
  // Static human-readable detail for logs (never null on kError).
  const char* what = nullptr;
  // For CONNECT (success or error): the raw protocol level byte, once read
  // (0 if not reached). With kUnsupportedProtocolVersion it tells the broker
  // which CONNACK form to answer with; see ConnackVersionForLevel().
  uint8_t protocol_level = 0;
};

// The parsed fixed header.
struct FixedHeader {
  PacketType type = PacketType::kConnect;
  uint8_t flags = 0;  // Low nibble of byte 1.
  uint32_t remaining_length = 0;
  uint8_t header_size = 0;  // 2..5 bytes.

  size_t packet_size() const { return header_size + size_t{remaining_length}; }
};

// Parses the fixed header at the front of `input`. kOk: *out is set and
// `consumed` is the header size. kNeedMore: the header is incomplete.
// kError: packet type 0 (or 15 outside MQTT 5), a malformed remaining length,
// reserved flag bits wrong for the type [MQTT-2.2.2-1/2], PUBLISH QoS 3
// [MQTT-3.3.1-4] or DUP with QoS 0 [MQTT-3.3.1-2], a packet larger than
// options.max_packet_size (kPacketTooLarge), or a non-CONNECT first packet.
DecodeResult DecodeFixedHeader(absl::Span<const uint8_t> input, const DecodeOptions& options,
                               FixedHeader* out);

// Decodes one packet from the front of `input` into *out. Strings, binary
// fields and payloads in *out point into `input`. kNeedMore is returned only
// when the fixed header is valid and the packet is incomplete (*out is then
// untouched); after kError *out holds unspecified, partly decoded content.
// Reusing one Packet across calls is cheapest (the alternative is re-created
// in place). Server-side rules that need connection state are the caller's:
// a second CONNECT [MQTT-3.1.0-2], packets a client may not send (CONNACK,
// SUBACK, ...), Subscription Identifier in a client PUBLISH [MQTT-3.3.4-6],
// Topic Alias above the negotiated maximum, Receive Maximum accounting.
DecodeResult DecodePacket(absl::Span<const uint8_t> input, const DecodeOptions& options,
                          Packet* out);

// The version whose CONNACK format answers a CONNECT with protocol level
// `level` that was refused as kUnsupportedProtocolVersion: levels >= 5 get
// the MQTT 5 form (reason 0x84), lower ones the 3.1.1 form (return code 0x01;
// the server MAY then close [MQTT-3.1.2-2]).
constexpr ProtocolVersion ConnackVersionForLevel(uint8_t level) {
  return (level & 0x7F) >= 5 ? ProtocolVersion::kV5 : ProtocolVersion::kV311;
}

}  // namespace shardmq::mqtt
