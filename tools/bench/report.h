// The figures of one run and how they are shown: a table for people, one
// JSON object for scripts (bench/compare), and the exit code.
#pragma once

#include <cstdint>
#include <string>

#include "config.h"
#include "histogram.h"

namespace shardmq::bench {

inline constexpr int kExitOk = 0;
inline constexpr int kExitIntegrity = 1;  // Lost/duplicated/reordered beyond what is allowed.
inline constexpr int kExitUsage = 2;      // Bad flags.
inline constexpr int kExitBroker = 3;     // Unreachable, refused CONNECT/SUBSCRIBE, dropped us.

struct Results {
  Config config;
  std::string error;  // Non-empty: the run could not complete.
  bool error_connecting = false;

  // Publish/subscribe scenarios. The window is [warm-up end, end) in
  // intended send time.
  double window_s = 0;
  uint64_t publishers = 0;
  uint64_t subscribers = 0;
  uint64_t streams = 0;  // (publisher, subscriber) pairs that should flow.
  uint64_t sent_total = 0;
  uint64_t sent_in_window = 0;
  uint64_t delivered_in_window = 0;
  uint64_t received_total = 0;
  uint64_t expected_total = 0;
  LatencyHistogram latency;
  uint64_t lost = 0;
  uint64_t duplicated = 0;
  uint64_t reordered = 0;
  uint64_t foreign = 0;  // Payloads that were not ours or from an unexpected publisher.

  // Broker, with --broker-pid (over the measurement window).
  bool broker_sampled = false;
  double broker_cpu_percent = 0;
  double broker_cpu_us_per_msg = 0;
  uint64_t broker_rss_start = 0;
  uint64_t broker_rss_end = 0;

  // conn.
  uint64_t connections = 0;
  double connect_s = 0;
  LatencyHistogram connect_latency;
  double broker_bytes_per_connection = 0;
  // conn, with --broker-pid: broker CPU (utime+stime) from before the first
  // connect until the last CONNACK, per connection; and the rate one broker
  // core would sustain at that cost (1e6 / it) when the load generator is
  // not the limit.
  double broker_cpu_us_per_conn = 0;
  double broker_conn_capacity = 0;
  uint64_t pipelined_connects = 0;  // CONNECT sent without an EPOLLOUT wait

  // retained.
  double retained_ms = 0;
  uint64_t retained_received = 0;

  double publish_rate() const { return window_s > 0 ? sent_in_window / window_s : 0; }
  double delivered_rate() const { return window_s > 0 ? delivered_in_window / window_s : 0; }
};

// Why the run failed its integrity checks, or "" when it passed.
std::string IntegrityFailure(const Results& r);
int ExitCode(const Results& r);

std::string FormatTable(const Results& r);
std::string FormatJson(const Results& r);

}  // namespace shardmq::bench
