// The non-template half of StreamDecoder: partial-packet buffering.
#include "mqtt/stream_decoder.h"

#include <algorithm>

namespace shardmq::mqtt {
namespace {

// A buffer that grew beyond this for one large packet is given back.
constexpr size_t kKeepCapacity = 64 * 1024;

}  // namespace

DecodeResult StreamDecoder::CompletePartial(absl::Span<const uint8_t> chunk, size_t* pos) {
  while (true) {
    if (partial_target_ == 0) {
      FixedHeader h;
      DecodeResult r = DecodeFixedHeader(absl::MakeConstSpan(partial_), options_, &h);
      if (r.status == DecodeStatus::kError) {
        failed_ = true;
        error_ = r;
        error_.consumed = 0;
        r.consumed = *pos;
        return r;
      }
      if (r.status == DecodeStatus::kOk) {
        partial_target_ = h.packet_size();
        partial_.reserve(partial_target_);
        continue;
      }
      // Header still incomplete: take one more byte (at most 5 in total).
      if (*pos == chunk.size()) break;
      partial_.push_back(chunk[(*pos)++]);
      continue;
    }
    const size_t take = std::min(partial_target_ - partial_.size(), chunk.size() - *pos);
    partial_.insert(partial_.end(), chunk.begin() + *pos, chunk.begin() + *pos + take);
    *pos += take;
    if (partial_.size() == partial_target_) {
      DecodeResult r;
      r.status = DecodeStatus::kOk;
      r.consumed = *pos;
      return r;
    }
    break;
  }
  DecodeResult r;
  r.consumed = *pos;
  return r;
}

DecodeResult StreamDecoder::DecodeOne(absl::Span<const uint8_t> input) {
  DecodeResult r = DecodePacket(input, options_, packet_);
  if (r.status == DecodeStatus::kOk) {
    // The first CONNECT fixes the version; a second CONNECT is a Protocol
    // Error the broker handles [MQTT-3.1.0-2], and must not switch it.
    if (options_.version == ProtocolVersion::kUnknown) {
      if (const Connect* c = std::get_if<Connect>(packet_)) options_.version = c->version;
    }
  } else if (r.status == DecodeStatus::kError) {
    failed_ = true;
    error_ = r;
    error_.consumed = 0;
  }
  return r;
}

void StreamDecoder::SavePartial(absl::Span<const uint8_t> rest) {
  partial_.assign(rest.begin(), rest.end());
  partial_target_ = 0;
  FixedHeader h;
  if (DecodeFixedHeader(rest, options_, &h).status == DecodeStatus::kOk) {
    partial_target_ = h.packet_size();
    partial_.reserve(partial_target_);
  }
}

void StreamDecoder::ReleasePartial() {
  partial_.clear();
  partial_target_ = 0;
  if (partial_.capacity() > kKeepCapacity) partial_.shrink_to_fit();
}

}  // namespace shardmq::mqtt
