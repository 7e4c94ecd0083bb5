// WebSocket (RFC 6455) as a per-connection byte transform, for MQTT over
// WebSocket listeners.
//
// Sits where TlsSession sits, or on top of it for wss: the reactor feeds the
// bytes it received (plaintext after TLS) in with Feed(), pulls MQTT bytes out
// with Read(), pushes the handler's bytes in with Write() and queues what
// DrainOutput() yields (the 101 answer, frames, pongs, close frames) toward the
// socket. The MQTT layer never sees a header or a frame.
//
// Incoming: the HTTP Upgrade request (ws_handshake.h), then client frames,
// decoded with wslay's frame API (which does no I/O of its own). Binary
// frames and their continuations carry MQTT bytes; frame and packet
// boundaries need not match, the MQTT decoder streams. Pings are answered,
// pongs ignored; a close frame is answered with a close frame and ends the
// session. Text frames, unmasked frames, reserved bits or opcodes and
// broken fragmentation are protocol errors: a close frame (1003 or 1002),
// then the end.
// Outgoing: every Write() becomes one unmasked binary frame.
//
// Memory: wslay's frame context (about 4.2 KiB: its 4 KiB receive buffer)
// plus input not decoded yet, which the reactor keeps to one receive (or one
// TLS record) at a time; the request is capped at kMaxWsRequestBytes.
//
// Threading: used by one thread at a time; moves to another shard with its
// connection (hand-off), with input that arrived meanwhile kept inside.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/types/span.h"

struct wslay_frame_context;

namespace shardmq::shard {

// Per-listener settings, shared read-only by every shard.
struct WsConfig {
  std::string path = "/mqtt";  // the request path clients must use
};

class WsSession {
 public:
  // Keeps `config` alive as long as the session. Null if memory ran out.
  static std::unique_ptr<WsSession> Create(std::shared_ptr<const WsConfig> config);
  ~WsSession();
  WsSession(const WsSession&) = delete;
  WsSession& operator=(const WsSession&) = delete;

  // Bytes received from the peer (copied).
  void Feed(absl::Span<const uint8_t> bytes);

  // Advances the handshake and decodes frames. Returns MQTT bytes written to
  // `out` (> 0), 0 when more input is needed, -1 when the session is over:
  // the peer closed (closed_by_peer()) or broke the protocol (error()). After
  // any call output may be waiting: drain it, then (after -1) close the
  // connection once it is flushed.
  int Read(absl::Span<uint8_t> out);

  // Frames `bytes` as one binary frame. Before the handshake completes it is
  // held and framed once the handshake is done. False once the session is
  // over (the bytes are dropped).
  bool Write(absl::Span<const uint8_t> bytes);

  // Queues a close frame (1000, normal closure) unless one was sent.
  void Close();

  bool HasOutput() const { return !out_.empty(); }
  // Hands the pending output to `sink` (valid during the call) and clears it.
  void DrainOutput(absl::FunctionRef<void(absl::Span<const uint8_t>)> sink);

  bool handshake_done() const { return handshake_done_; }
  bool over() const { return over_; }
  bool closed_by_peer() const { return closed_by_peer_; }
  const std::string& error() const { return error_; }

 private:
  explicit WsSession(std::shared_ptr<const WsConfig> config);
  static ssize_t RecvCallback(uint8_t* buf, size_t len, int flags, void* user_data);
  static ssize_t SendCallback(const uint8_t* data, size_t len, int flags, void* user_data);
  static int GenMaskCallback(uint8_t* buf, size_t len, void* user_data);
  bool Handshake();
  void SendFrame(uint8_t opcode, absl::Span<const uint8_t> payload);
  // Sends a close frame with `code` (once) and ends the session.
  void Fail(uint16_t code, std::string why);
  // A complete control frame arrived (payload in control_).
  void OnControlFrame();

  std::shared_ptr<const WsConfig> config_;
  wslay_frame_context* frames_ = nullptr;
  std::string in_;       // received, not yet decoded
  size_t in_pos_ = 0;    // bytes of in_ wslay has taken
  std::string out_;      // encoded, not yet drained
  std::string pending_;  // Write() before the handshake completed
  // Decoded MQTT bytes that did not fit the caller's buffer (at most one
  // wslay chunk); Read() returns them first.
  std::string spill_;
  // The frame being received: its opcode and the payload bytes seen so far.
  uint8_t frame_opcode_ = 0;
  uint64_t frame_offset_ = 0;
  bool mid_frame_ = false;
  bool in_message_ = false;  // a fragmented binary message awaits continuations
  std::string control_;      // payload of the control frame being received
  bool handshake_done_ = false;
  bool close_sent_ = false;
  bool closed_by_peer_ = false;
  bool over_ = false;
  std::string error_;
};

}  // namespace shardmq::shard
