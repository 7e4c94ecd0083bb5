// What the main thread and the worker threads share during a run: the phase
// the run is in, the measurement window, progress counters and the first
// error. Everything else (connections, histograms, trackers) is owned by one
// worker and read by the main thread only after the workers have joined.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "config.h"

namespace shardmq::bench {

// The main thread moves the phase forward; workers react on their next loop
// turn (they wake at least every 10 ms).
enum class Phase : int {
  kConnect = 0,      // Open connections, CONNECT, wait for CONNACK.
  kRetainedPublish,  // retained: publish the R retained messages.
  kSubscribe,        // Subscribers send SUBSCRIBE.
  kPublish,          // Publishers run (warm-up + measurement).
  kDrain,            // Publishers stop; acks and stragglers still flow.
  kStop,             // DISCONNECT and close everything; workers return.
};

enum class Role : uint8_t { kPublisher, kSubscriber, kIdle };

// One client the run opens, decided by the scenario before any I/O.
struct ClientSpec {
  Role role = Role::kIdle;
  uint32_t index = 0;  // Publisher id (stamped into payloads) or subscriber id.
  std::string client_id;
  std::string topic;      // Publisher: topic (retained: prefix; "/<seq>" is appended).
  std::string filter;     // Subscriber: filter.
  bool retained = false;  // Publisher of the retained scenario.
};

struct Shared {
  explicit Shared(const Config& c) : config(c) {}

  const Config& config;
  sockaddr_storage address{};
  socklen_t address_len = 0;
  // Config::sub_host / sub_port (the same as `address` when not set).
  sockaddr_storage sub_address{};
  socklen_t sub_address_len = 0;

  std::atomic<Phase> phase{Phase::kConnect};
  // Written before the phase moves to kPublish (release), read after (acquire).
  uint64_t start_ns = 0;          // Publishers' schedule origin.
  uint64_t measure_start_ns = 0;  // Window of intended send times that count.
  uint64_t measure_end_ns = 0;

  std::atomic<int> connected{0};
  std::atomic<int> subscribed{0};
  std::atomic<int> workers_stopped_publishing{0};
  std::atomic<uint64_t> sent{0};      // PUBLISHes written (progress).
  std::atomic<uint64_t> received{0};  // PUBLISHes received by subscribers.
  std::atomic<int64_t> inflight{0};   // QoS >= 1 PUBLISHes not yet acknowledged.
  std::atomic<bool> retained_published{false};
  std::atomic<uint64_t> retained_subscribe_ns{0};
  std::atomic<uint64_t> retained_done_ns{0};
  std::atomic<uint64_t> retained_last_ns{0};  // Latest retained arrival, all or not.
  std::atomic<uint64_t> first_connect_ns{0};
  std::atomic<uint64_t> last_connack_ns{0};

  // Per-publisher count of PUBLISHes sent, written by the owning worker
  // before it bumps workers_stopped_publishing.
  std::vector<uint64_t> sent_per_publisher;

  std::atomic<bool> failed{false};
  bool failed_connecting = false;  // Guarded by error_mu.
  std::mutex error_mu;
  std::string first_error;  // Guarded by error_mu.

  void Fail(std::string message, bool while_connecting) {
    std::lock_guard<std::mutex> lock(error_mu);
    if (!failed.load()) {
      first_error = std::move(message);
      failed_connecting = while_connecting;
      failed.store(true, std::memory_order_release);
    }
  }
};

uint64_t NowNs();

}  // namespace shardmq::bench
