#include "shard/ws_session.h"

#include <wslay/wslay.h>

#include <algorithm>
#include <cstring>

#include "shard/ws_handshake.h"

namespace shardmq::shard {
namespace {

enum Opcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

// Close status codes (RFC 6455 7.4.1).
constexpr uint16_t kNormalClosure = 1000;
constexpr uint16_t kProtocolError = 1002;
constexpr uint16_t kUnsupportedData = 1003;

// Buffers that grew for one large message give their memory back once empty.
constexpr size_t kKeepCapacity = 64 * 1024;

void ReleaseIfLarge(std::string& s) {
  if (s.capacity() > kKeepCapacity) std::string().swap(s);
}

}  // namespace

std::unique_ptr<WsSession> WsSession::Create(std::shared_ptr<const WsConfig> config) {
  std::unique_ptr<WsSession> session(new WsSession(std::move(config)));
  static constexpr wslay_frame_callbacks kCallbacks = {
      &WsSession::SendCallback, &WsSession::RecvCallback, &WsSession::GenMaskCallback};
  if (wslay_frame_context_init(&session->frames_, &kCallbacks, session.get()) != 0) {
    return nullptr;
  }
  return session;
}

WsSession::WsSession(std::shared_ptr<const WsConfig> config) : config_(std::move(config)) {}

WsSession::~WsSession() {
  if (frames_ != nullptr) wslay_frame_context_free(frames_);
}

ssize_t WsSession::RecvCallback(uint8_t* buf, size_t len, int /*flags*/, void* user_data) {
  auto* self = static_cast<WsSession*>(user_data);
  const size_t n = std::min(len, self->in_.size() - self->in_pos_);
  if (n == 0) return WSLAY_ERR_WANT_READ;
  std::memcpy(buf, self->in_.data() + self->in_pos_, n);
  self->in_pos_ += n;
  if (self->in_pos_ == self->in_.size()) {
    self->in_.clear();
    self->in_pos_ = 0;
    ReleaseIfLarge(self->in_);
  }
  return static_cast<ssize_t>(n);
}

ssize_t WsSession::SendCallback(const uint8_t* data, size_t len, int /*flags*/, void* user_data) {
  // Output goes to memory, which takes everything: frames are never partial.
  static_cast<WsSession*>(user_data)->out_.append(reinterpret_cast<const char*>(data), len);
  return static_cast<ssize_t>(len);
}

int WsSession::GenMaskCallback(uint8_t* buf, size_t len, void* /*user_data*/) {
  // Only clients mask (RFC 6455 5.3); a server never asks for a key.
  std::memset(buf, 0, len);
  return 0;
}

void WsSession::Feed(absl::Span<const uint8_t> bytes) {
  if (over_) return;
  in_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

void WsSession::SendFrame(uint8_t opcode, absl::Span<const uint8_t> payload) {
  wslay_frame_iocb iocb{};
  iocb.fin = 1;
  iocb.opcode = opcode;
  iocb.payload_length = payload.size();
  iocb.data = payload.data();
  iocb.data_length = payload.size();
  wslay_frame_send(frames_, &iocb);
}

void WsSession::Fail(uint16_t code, std::string why) {
  if (!close_sent_) {
    const uint8_t payload[2] = {static_cast<uint8_t>(code >> 8), static_cast<uint8_t>(code)};
    SendFrame(kClose, payload);
    close_sent_ = true;
  }
  over_ = true;
  if (error_.empty()) error_ = std::move(why);
  in_.clear();
  in_pos_ = 0;
}

bool WsSession::Handshake() {
  WsHandshake h = ParseWsHandshake(in_, config_->path);
  if (h.status == WsHandshake::kIncomplete) return false;
  out_ += h.response;
  if (h.status == WsHandshake::kRejected) {
    over_ = true;
    error_ = "bad WebSocket handshake: " + h.error;
    in_.clear();
    return false;
  }
  in_pos_ = h.consumed;
  if (in_pos_ == in_.size()) {
    in_.clear();
    in_pos_ = 0;
  }
  handshake_done_ = true;
  if (!pending_.empty()) {
    std::string pending = std::move(pending_);
    pending_.clear();
    SendFrame(kBinary, absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(pending.data()),
                                                 pending.size()));
  }
  return true;
}

void WsSession::OnControlFrame() {
  const auto payload =
      absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(control_.data()), control_.size());
  switch (frame_opcode_) {
    case kPing:
      if (!close_sent_) SendFrame(kPong, payload);
      break;
    case kPong:
      break;  // we send no pings; an unsolicited pong is allowed and ignored
    case kClose:
      if (control_.size() == 1) {
        Fail(kProtocolError, "close frame with a 1-byte payload");
        return;
      }
      closed_by_peer_ = true;
      if (!close_sent_) {
        // Echo the peer's status code (RFC 6455 5.5.1), none if it gave none.
        SendFrame(kClose, payload.subspan(0, std::min<size_t>(payload.size(), 2)));
        close_sent_ = true;
      }
      over_ = true;
      break;
    default:
      break;
  }
}

int WsSession::Read(absl::Span<uint8_t> out) {
  size_t n = 0;
  if (!spill_.empty()) {
    n = std::min(out.size(), spill_.size());
    std::memcpy(out.data(), spill_.data(), n);
    spill_.erase(0, n);
    if (n == out.size()) return static_cast<int>(n);
  }
  if (over_) return n > 0 ? static_cast<int>(n) : -1;
  if (!handshake_done_ && !Handshake()) return over_ ? -1 : 0;
  while (n < out.size() && !over_) {
    wslay_frame_iocb iocb{};
    const ssize_t r = wslay_frame_recv(frames_, &iocb);
    if (r == WSLAY_ERR_WANT_READ) break;
    if (r < 0) {
      Fail(kProtocolError, "malformed frame header");
      break;
    }
    if (!mid_frame_) {
      // The first bytes of a frame: check its header once.
      if (iocb.mask == 0) {
        Fail(kProtocolError, "unmasked client frame");
        break;
      }
      if (iocb.rsv != 0) {
        Fail(kProtocolError, "reserved bits set (no extension was negotiated)");
        break;
      }
      switch (iocb.opcode) {
        case kBinary:
          if (in_message_) {
            Fail(kProtocolError, "new message inside a fragmented one");
            break;
          }
          in_message_ = iocb.fin == 0;
          break;
        case kContinuation:
          if (!in_message_) {
            Fail(kProtocolError, "continuation frame without a message");
            break;
          }
          in_message_ = iocb.fin == 0;
          break;
        case kText:
          Fail(kUnsupportedData, "text frame (MQTT needs binary frames)");
          break;
        case kClose:
        case kPing:
        case kPong:
          control_.clear();
          break;
        default:
          Fail(kProtocolError, "reserved opcode");
          break;
      }
      if (over_) break;
      frame_opcode_ = iocb.opcode;
      mid_frame_ = true;
    }
    if (frame_opcode_ == kBinary || frame_opcode_ == kContinuation) {
      const size_t fits = std::min(iocb.data_length, out.size() - n);
      std::memcpy(out.data() + n, iocb.data, fits);
      n += fits;
      spill_.append(reinterpret_cast<const char*>(iocb.data) + fits, iocb.data_length - fits);
    } else {
      control_.append(reinterpret_cast<const char*>(iocb.data), iocb.data_length);
    }
    frame_offset_ += iocb.data_length;
    if (frame_offset_ == iocb.payload_length) {
      mid_frame_ = false;
      frame_offset_ = 0;
      if (frame_opcode_ >= kClose) OnControlFrame();
    }
  }
  if (n > 0) return static_cast<int>(n);
  return over_ ? -1 : 0;
}

bool WsSession::Write(absl::Span<const uint8_t> bytes) {
  if (over_ || close_sent_) return false;
  if (!handshake_done_) {
    pending_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return true;
  }
  SendFrame(kBinary, bytes);
  return true;
}

void WsSession::Close() {
  if (!handshake_done_ || close_sent_) return;
  const uint8_t payload[2] = {kNormalClosure >> 8, kNormalClosure & 0xFF};
  SendFrame(kClose, payload);
  close_sent_ = true;
}

void WsSession::DrainOutput(absl::FunctionRef<void(absl::Span<const uint8_t>)> sink) {
  if (out_.empty()) return;
  sink(absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(out_.data()), out_.size()));
  out_.clear();
  ReleaseIfLarge(out_);
}

}  // namespace shardmq::shard
