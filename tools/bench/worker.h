// One load-generator thread: an epoll loop over many non-blocking client
// connections, each speaking raw MQTT through src/mqtt. Publishers encode
// PUBLISHes straight into the connection's OutBuffer and the loop flushes
// every dirty connection once per turn, so many PUBLISHes share one write.
//
// Lifecycle: constructed by the runner with its share of the clients, Run()
// on its own thread until the phase reaches kStop; the runner reads the
// results (histogram, trackers, counts) after joining the thread.
#pragma once

#include <cstdint>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "histogram.h"
#include "mqtt/packet.h"
#include "mqtt/stream_decoder.h"
#include "out_buffer.h"
#include "seq_tracker.h"
#include "shared_state.h"

namespace shardmq::bench {

class Worker {
 public:
  struct Conn;

  Worker(Shared* shared, std::vector<ClientSpec> clients);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void Run();

  // Results, valid after Run() returned.
  const LatencyHistogram& latency() const { return latency_; }
  const LatencyHistogram& connect_latency() const { return connect_latency_; }
  uint64_t measured() const { return measured_; }  // Deliveries in the window.
  uint64_t sent_in_window() const { return sent_in_window_; }
  uint64_t foreign() const { return foreign_; }  // Payloads without our stamp.
  // Connections whose CONNECT went out inside StartConnect (no EPOLLOUT wait).
  uint64_t pipelined_connects() const { return pipelined_connects_; }
  // Subscriber index -> its streams keyed by publisher id.
  std::vector<std::pair<uint32_t, const absl::flat_hash_map<uint32_t, SeqTracker>*>> Streams()
      const;

 private:
  void OnPhase(Phase phase, uint64_t now);
  void StartConnect(Conn* c, uint64_t now);
  void OnWritable(Conn* c);
  void OnReadable(Conn* c);
  bool OnPacket(Conn* c, const mqtt::Packet& packet);
  void OnPublish(Conn* c, const mqtt::Publish& publish);
  void EncodeConnect(Conn* c);
  void SendSubscribe(Conn* c);
  void TrySend(Conn* c, uint64_t now);
  bool WindowOpen(const Conn* c) const;
  void SendPublish(Conn* c, uint64_t intended_ns);
  void AppendAck(Conn* c, mqtt::PacketType type, uint16_t id);
  void AppendPing(Conn* c);
  void MarkDirty(Conn* c);
  void Flush(Conn* c);
  void WantWrite(Conn* c, bool on);
  void CloseWithError(Conn* c, std::string why);
  void ServiceSchedule(uint64_t now);
  void OpenMoreConnections(uint64_t now);
  void StopPublishing();
  void PublishCounters();

  Shared* shared_;
  const Config& config_;
  int epoll_fd_ = -1;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<Conn*> dirty_;
  std::vector<Conn*> flushing_;  // dirty_ of this turn while it is flushed
  // Publishers due to send, by due time (rate 0: by when they became ready).
  using Due = std::pair<uint64_t, Conn*>;
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> schedule_;
  Phase phase_ = Phase::kConnect;
  std::vector<uint8_t> read_buf_;

  // conn scenario: connections not opened yet, and the opening pace.
  size_t next_to_open_ = 0;
  int handshaking_ = 0;
  uint64_t open_start_ns_ = 0;

  LatencyHistogram latency_;
  LatencyHistogram connect_latency_;
  uint64_t measured_ = 0;
  uint64_t sent_in_window_ = 0;
  uint64_t foreign_ = 0;
  uint64_t pipelined_connects_ = 0;
  uint64_t recv_now_ = 0;
  // The measurement window, copied from Shared when the phase reaches kPublish.
  uint64_t measure_start_ns_ = 0;
  uint64_t measure_end_ns_ = 0;  // Clock read once per recv(): every packet in it arrived then.
  uint64_t unreported_sent_ = 0;
  uint64_t unreported_received_ = 0;
  int64_t unreported_inflight_ = 0;
  bool stopped_publishing_ = false;
};

}  // namespace shardmq::bench
