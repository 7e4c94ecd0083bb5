// Synthetic but realistic topic workload for the topic benchmarks: an IoT
// fleet of sites, devices and metrics.
//   topics:  "site/{s}/device/{d}/{metric}"
//   filters: ~85% exact topics, ~10% one '+' ("site/{s}/device/+/{metric}" or
//            "site/+/device/{d}/{metric}"), ~5% '#' ("site/{s}/device/{d}/#").
#pragma once

#include <malloc.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"

namespace shardmq::topic::bench {

inline constexpr int kSites = 1000;
inline constexpr int kDevicesPerSite = 1000;
inline constexpr const char* kMetrics[] = {"temp",    "humidity", "pressure", "co2",
                                           "battery", "rssi",     "status",   "voltage"};
inline constexpr int kMetricCount = 8;

class Workload {
 public:
  explicit Workload(uint32_t seed) : rng_(seed) {}

  std::string Topic() {
    return absl::StrFormat("site/%d/device/%d/%s", Uniform(kSites), Uniform(kDevicesPerSite),
                           kMetrics[Uniform(kMetricCount)]);
  }

  std::string Filter() {
    int kind = Uniform(100);
    int site = Uniform(kSites), device = Uniform(kDevicesPerSite);
    const char* metric = kMetrics[Uniform(kMetricCount)];
    if (kind < 85) return absl::StrFormat("site/%d/device/%d/%s", site, device, metric);
    if (kind < 90) return absl::StrFormat("site/%d/device/+/%s", site, metric);
    if (kind < 95) return absl::StrFormat("site/+/device/%d/%s", device, metric);
    return absl::StrFormat("site/%d/device/%d/#", site, device);
  }

  int Uniform(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

 private:
  std::mt19937 rng_;
};

// Bytes currently allocated through malloc (glibc; the benchmarks do not link
// mimalloc).
inline size_t HeapInUse() { return mallinfo2().uordblks; }

}  // namespace shardmq::topic::bench
