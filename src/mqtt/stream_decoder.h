// Per-connection streaming decoder. Bytes arrive in chunks of any size (an
// io_uring provided buffer, down to one byte); complete packets are decoded
// straight out of the chunk with no copy, and only a packet that straddles
// the end of a chunk is copied into an internal buffer, which is completed
// from the next chunk(s) with exactly the bytes it still needs.
//
// Lifecycle: one StreamDecoder per connection, owned by the connection on
// its home shard; not thread-safe. Before CONNECT the version is kUnknown
// and only CONNECT is accepted; the first successfully decoded CONNECT sets
// the version to the one it names (a later CONNECT does not change it) (set_protocol_version()
// overrides it, e.g. after a connection is handed to another shard). After an error the decoder
// stays failed and returns the same error: close the connection.
//
// Example:
//   StreamDecoder dec(options);
//   DecodeResult r = dec.Feed(chunk, [&](const Packet& p) {
//     Handle(p);    // views in `p` are valid only until this returns
//     return true;  // false: stop; feed chunk.subspan(r.consumed) later
//   });
//   // the chunk may be returned to the kernel now
//   if (r.status == DecodeStatus::kError) Close(r.reason);
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/types/span.h"
#include "mqtt/decoder.h"
#include "mqtt/packet.h"

namespace shardmq::mqtt {

class StreamDecoder {
 public:
  explicit StreamDecoder(const DecodeOptions& options = {})
      : options_(options),
        owned_packet_(std::make_unique<Packet>()),
        packet_(owned_packet_.get()) {}

  // Decodes into `scratch` instead of a Packet of its own. A Packet is about
  // 900 bytes, too much to keep per idle connection, so a shard gives all its
  // connections' decoders one scratch. Only valid for decoders used on one
  // thread whose Feed calls never nest; `scratch` must outlive the decoder.
  StreamDecoder(const DecodeOptions& options, Packet* scratch)
      : options_(options), packet_(scratch) {}

  StreamDecoder(const StreamDecoder&) = delete;
  StreamDecoder& operator=(const StreamDecoder&) = delete;

  // Decodes every complete packet in `chunk`, calling on_packet(const
  // Packet&) -> bool for each (return false to stop). Views in the packet
  // point into `chunk` or the internal buffer and are valid only during the
  // call. Returns:
  //  - kNeedMore: the whole chunk was consumed (a trailing partial packet,
  //    if any, was buffered); feed the next chunk.
  //  - kOk: on_packet returned false; `consumed` bytes of `chunk` were used
  //    and the rest was NOT buffered: feed chunk.subspan(consumed) later.
  //  - kError: `reason`/`what` say why; the decoder is now failed.
  template <class F>
  DecodeResult Feed(absl::Span<const uint8_t> chunk, F&& on_packet) {
    if (failed_) return error_;
    size_t pos = 0;
    if (!partial_.empty()) {
      DecodeResult r = CompletePartial(chunk, &pos);
      if (r.status != DecodeStatus::kOk) return r;
      r = DecodeOne(absl::MakeConstSpan(partial_));
      if (r.status != DecodeStatus::kOk) {
        r.consumed = pos;
        return r;
      }
      const bool go_on = on_packet(static_cast<const Packet&>(*packet_));
      ReleasePartial();
      if (!go_on) return Stopped(pos);
    }
    while (pos < chunk.size()) {
      const absl::Span<const uint8_t> rest = chunk.subspan(pos);
      DecodeResult r = DecodeOne(rest);
      if (r.status == DecodeStatus::kNeedMore) {
        SavePartial(rest);
        pos = chunk.size();
        break;
      }
      if (r.status == DecodeStatus::kError) {
        r.consumed += pos;
        return r;
      }
      pos += r.consumed;
      if (!on_packet(static_cast<const Packet&>(*packet_))) return Stopped(pos);
    }
    DecodeResult done;
    done.consumed = pos;
    return done;
  }

  // The version packets are decoded with (kUnknown before CONNECT).
  ProtocolVersion protocol_version() const { return options_.version; }
  void set_protocol_version(ProtocolVersion version) { options_.version = version; }

  // Changes the maximum packet size (e.g. after CONNECT negotiated it).
  void set_max_packet_size(uint32_t size) { options_.max_packet_size = size; }
  // Changes the checks of topics and payloads for the packets decoded next
  // (the server's limits changed while the connection is open).
  void set_content_checks(const TopicLimits& topic_limits, bool validate_utf8_payload) {
    options_.topic_limits = topic_limits;
    options_.validate_utf8_payload = validate_utf8_payload;
  }

  const DecodeOptions& options() const { return options_; }

  // Bytes of a partial packet held internally.
  size_t buffered_bytes() const { return partial_.size(); }

  // True after an error; Feed keeps returning it.
  bool failed() const { return failed_; }

 private:
  // Moves bytes from chunk[*pos..] into partial_ until it holds one complete
  // packet (kOk), the chunk runs out (kNeedMore) or the header is bad.
  DecodeResult CompletePartial(absl::Span<const uint8_t> chunk, size_t* pos);
  // DecodePacket into packet_, tracking the version and errors.
  DecodeResult DecodeOne(absl::Span<const uint8_t> input);
  // Copies a trailing partial packet into partial_.
  void SavePartial(absl::Span<const uint8_t> rest);
  // Empties partial_ after its packet was delivered.
  void ReleasePartial();
  static DecodeResult Stopped(size_t consumed) {
    DecodeResult r;
    r.status = DecodeStatus::kOk;
    r.consumed = consumed;
    return r;
  }

  DecodeOptions options_;
  std::unique_ptr<Packet> owned_packet_;  // null when a scratch was given
  Packet* packet_;
  std::vector<uint8_t> partial_;
  size_t partial_target_ = 0;  // Size of the buffered packet once its header is known.
  DecodeResult error_;
  bool failed_ = false;
};

}  // namespace shardmq::mqtt
