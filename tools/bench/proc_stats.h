// Reads a process's CPU time and resident memory from /proc, so the bench
// can report the broker's CPU% and CPU time per message (--broker-pid).
#pragma once

#include <cstdint>
#include <optional>

namespace shardmq::bench {

struct ProcSample {
  uint64_t cpu_ns = 0;  // utime + stime, all threads (clock-tick resolution).
  // On-CPU time summed over the live threads' /proc/PID/task/*/schedstat
  // (nanoseconds); 0 when schedstat is unavailable. Threads that exited are
  // missing, so use it only across a span where the threads live on.
  uint64_t sched_ns = 0;
  uint64_t rss_bytes = 0;  // VmRSS.
};

// nullopt when the process is gone or /proc is unreadable.
std::optional<ProcSample> SampleProcess(int pid);

}  // namespace shardmq::bench
