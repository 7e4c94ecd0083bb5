#include "report.h"

#include "absl/strings/str_format.h"

namespace shardmq::bench {
namespace {

double Us(uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

bool IsPubSub(const Config& c) {
  return c.scenario != Scenario::kConn && c.scenario != Scenario::kRetained;
}

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      out += absl::StrFormat("\\u%04x", ch);
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string LatencyJson(const LatencyHistogram& h) {
  return absl::StrFormat(
      "{\"count\": %d, \"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, \"p999\": %.1f, "
      "\"max\": %.1f, \"mean\": %.1f}",
      h.count(), Us(h.Percentile(0.5)), Us(h.Percentile(0.9)), Us(h.Percentile(0.99)),
      Us(h.Percentile(0.999)), Us(h.max()), h.mean() / 1000.0);
}

}  // namespace

std::string IntegrityFailure(const Results& r) {
  const Config& c = r.config;
  const bool judged_loss = !c.allow_loss && (c.qos >= 1 || c.strict);
  const bool judged_dup = c.qos >= 1 || c.strict;
  std::string why;
  if (r.lost > 0 && judged_loss) why += absl::StrFormat("%d messages lost; ", r.lost);
  if (r.duplicated > 0 && judged_dup) why += absl::StrFormat("%d duplicated; ", r.duplicated);
  if (r.reordered > 0) why += absl::StrFormat("%d out of order; ", r.reordered);
  if (IsPubSub(c) && r.received_total == 0) why += "no message was delivered; ";
  if (c.scenario == Scenario::kRetained &&
      r.retained_received < static_cast<uint64_t>(c.retained)) {
    why += absl::StrFormat("only %d of %d retained messages arrived; ", r.retained_received,
                           c.retained);
  }
  if (!why.empty()) why.resize(why.size() - 2);
  return why;
}

int ExitCode(const Results& r) {
  if (!r.error.empty()) return kExitBroker;
  return IntegrityFailure(r).empty() ? kExitOk : kExitIntegrity;
}

std::string FormatTable(const Results& r) {
  const Config& c = r.config;
  std::string out = absl::StrFormat("shardmq-bench %s  %s:%d  MQTT %s  QoS %d  payload %d B\n",
                                    ScenarioName(c.scenario), c.host, c.port,
                                    mqtt::ProtocolVersionName(c.version()), c.qos, c.payload);
  auto row = [&](std::string_view name, const std::string& value) {
    absl::StrAppendFormat(&out, "  %-26s %s\n", name, value);
  };
  if (!r.error.empty()) row("error", r.error);
  if (c.session_expiry > 0) {
    row("subscriber sessions",
        c.version() == mqtt::ProtocolVersion::kV5
            ? absl::StrFormat("persistent (Session Expiry Interval %d s)", c.session_expiry)
            : std::string("persistent (Clean Session 0)"));
  }
  const bool nothing = !r.error.empty() && r.received_total == 0 && r.connections == 0;
  if (IsPubSub(c) && !nothing) {
    row("clients", absl::StrFormat("%d publishers, %d subscribers, %d streams", r.publishers,
                                   r.subscribers, r.streams));
    row("rate per publisher", c.rate > 0 ? absl::StrFormat("%g msg/s (open loop)", c.rate)
                                         : absl::StrFormat("max (window %d)", c.Window()));
    row("window", absl::StrFormat("%.2f s after %.2f s warm-up", r.window_s, c.warmup_ns / 1e9));
    row("published", absl::StrFormat("%.0f msg/s", r.publish_rate()));
    row("delivered", absl::StrFormat("%.0f msg/s  (%.1f MB/s payload)", r.delivered_rate(),
                                     r.delivered_rate() * c.payload / 1e6));
    const LatencyHistogram& h = r.latency;
    row("latency us p50/p90/p99", absl::StrFormat("%.1f / %.1f / %.1f", Us(h.Percentile(0.5)),
                                                  Us(h.Percentile(0.9)), Us(h.Percentile(0.99))));
    row("latency us p99.9/max",
        absl::StrFormat("%.1f / %.1f  (%s)", Us(h.Percentile(0.999)), Us(h.max()),
                        c.rate > 0 ? "from intended send time" : "closed loop"));
    row("sent / received total",
        absl::StrFormat("%d / %d (expected %d)", r.sent_total, r.received_total, r.expected_total));
    row("lost / dup / reordered",
        absl::StrFormat("%d / %d / %d", r.lost, r.duplicated, r.reordered));
    if (r.foreign) row("foreign payloads", absl::StrFormat("%d", r.foreign));
  }
  if (c.scenario == Scenario::kConn && !nothing) {
    row("connections", absl::StrFormat("%d in %.2f s = %.0f conn/s", r.connections, r.connect_s,
                                       r.connect_s > 0 ? r.connections / r.connect_s : 0));
    const LatencyHistogram& h = r.connect_latency;
    row("CONNACK latency us p50/p99/max",
        absl::StrFormat("%.1f / %.1f / %.1f", Us(h.Percentile(0.5)), Us(h.Percentile(0.99)),
                        Us(h.max())));
    if (r.broker_sampled) {
      row("broker memory/connection", absl::StrFormat("%.0f B", r.broker_bytes_per_connection));
      row("broker CPU/connection",
          absl::StrFormat("%.2f us  (one broker core: %.0f conn/s)", r.broker_cpu_us_per_conn,
                          r.broker_conn_capacity));
    }
  }
  if (c.scenario == Scenario::kRetained) {
    row("retained received",
        absl::StrFormat("%d of %d in %.2f ms", r.retained_received, c.retained, r.retained_ms));
  }
  if (r.broker_sampled) {
    if (IsPubSub(c)) {
      row("broker CPU", absl::StrFormat("%.1f %%  (%.2f us per delivered msg)",
                                        r.broker_cpu_percent, r.broker_cpu_us_per_msg));
    }
    row("broker RSS",
        absl::StrFormat("%.1f MB -> %.1f MB", r.broker_rss_start / 1e6, r.broker_rss_end / 1e6));
  }
  const std::string why = IntegrityFailure(r);
  row("result", !r.error.empty() ? "FAILED (broker)" : why.empty() ? "ok" : "FAILED: " + why);
  return out;
}

std::string FormatJson(const Results& r) {
  const Config& c = r.config;
  std::string out = "{";
  absl::StrAppendFormat(
      &out,
      "\"scenario\": \"%s\", \"host\": %s, \"port\": %d, \"mqtt_version\": %d, \"qos\": %d, "
      "\"payload\": %d, \"rate_per_publisher\": %g, \"window\": %d, \"threads\": %d, "
      "\"session_expiry\": %d, ",
      ScenarioName(c.scenario), JsonString(c.host), c.port, c.mqtt_version, c.qos, c.payload,
      c.rate, c.Window(), c.threads, c.session_expiry);
  absl::StrAppendFormat(
      &out,
      "\"publishers\": %d, \"subscribers\": %d, \"streams\": %d, \"window_s\": %.3f, "
      "\"sent_total\": %d, \"sent_in_window\": %d, \"received_total\": %d, "
      "\"expected_total\": %d, \"delivered_in_window\": %d, \"publish_rate\": %.1f, "
      "\"delivered_rate\": %.1f, \"latency_us\": %s, \"lost\": %d, \"duplicated\": %d, "
      "\"reordered\": %d, \"foreign\": %d, ",
      r.publishers, r.subscribers, r.streams, r.window_s, r.sent_total, r.sent_in_window,
      r.received_total, r.expected_total, r.delivered_in_window, r.publish_rate(),
      r.delivered_rate(), LatencyJson(r.latency), r.lost, r.duplicated, r.reordered, r.foreign);
  absl::StrAppendFormat(
      &out,
      "\"connections\": %d, \"connect_s\": %.3f, \"connect_rate\": %.1f, "
      "\"connect_latency_us\": %s, \"retained_received\": %d, "
      "\"retained_ms\": %.3f, \"pipelined_connects\": %d, ",
      r.connections, r.connect_s, r.connect_s > 0 ? r.connections / r.connect_s : 0.0,
      LatencyJson(r.connect_latency), r.retained_received, r.retained_ms, r.pipelined_connects);
  if (r.broker_sampled) {
    absl::StrAppendFormat(&out,
                          "\"broker\": {\"pid\": %d, \"cpu_percent\": %.2f, "
                          "\"cpu_us_per_msg\": %.4f, \"rss_start\": %d, \"rss_end\": %d, "
                          "\"bytes_per_connection\": %.1f, \"cpu_us_per_conn\": %.3f, "
                          "\"conn_capacity\": %.1f}, ",
                          c.broker_pid, r.broker_cpu_percent, r.broker_cpu_us_per_msg,
                          r.broker_rss_start, r.broker_rss_end, r.broker_bytes_per_connection,
                          r.broker_cpu_us_per_conn, r.broker_conn_capacity);
  }
  const std::string why = IntegrityFailure(r);
  absl::StrAppendFormat(&out, "\"error\": %s, \"integrity_failure\": %s, \"exit_code\": %d}",
                        r.error.empty() ? "null" : JsonString(r.error),
                        why.empty() ? "null" : JsonString(why), ExitCode(r));
  return out;
}

}  // namespace shardmq::bench
