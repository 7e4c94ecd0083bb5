#include "admin/sys_topics.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace shardmq::admin {
namespace {

uint64_t Sum(const uint64_t (&values)[3]) { return values[0] + values[1] + values[2]; }

uint64_t SeriesValue(const BrokerStats& s, SysLoad::Series series) {
  switch (series) {
    case SysLoad::kMessagesReceived:
      return s.messages_received;
    case SysLoad::kMessagesSent:
      return s.messages_sent;
    case SysLoad::kBytesReceived:
      return s.bytes_received;
    case SysLoad::kBytesSent:
      return s.bytes_sent;
    case SysLoad::kPublishDropped:
      return s.dropped_queue_full + s.dropped_qos0_slow + s.dropped_expired + s.dropped_too_large;
    case SysLoad::kConnections:
      return s.connects;
    case SysLoad::kSeriesCount:
      break;
  }
  return 0;
}

std::string Rate(double value) { return absl::StrFormat("%.2f", value); }

}  // namespace

void SysLoad::Update(const BrokerStats& stats, absl::Duration elapsed) {
  const double seconds = absl::ToDoubleSeconds(elapsed);
  for (int i = 0; i < kSeriesCount; ++i) {
    const uint64_t now = SeriesValue(stats, static_cast<Series>(i));
    if (primed_ && seconds > 0) {
      const double per_minute =
          static_cast<double>(now >= last_[i] ? now - last_[i] : 0) * 60.0 / seconds;
      // Weight of the past after `seconds`, for a window of w minutes.
      auto blend = [&](double& average, double window_minutes) {
        const double keep = std::exp(-seconds / (60.0 * window_minutes));
        average = average * keep + per_minute * (1.0 - keep);
      };
      blend(rates_[i].one, 1);
      blend(rates_[i].five, 5);
      blend(rates_[i].fifteen, 15);
    }
    last_[i] = now;
  }
  primed_ = true;
}

std::vector<std::pair<std::string, std::string>> SysTopicValues(
    const BrokerStats& s, const std::vector<ShardGauges>* gauges, const SysLoad& load,
    double uptime_seconds, const std::string& version) {
  std::vector<std::pair<std::string, std::string>> out;
  auto add = [&](absl::string_view topic, std::string value) {
    out.emplace_back(absl::StrCat("$SYS/broker/", topic), std::move(value));
  };
  auto num = [](uint64_t v) { return absl::StrCat(v); };
  add("version", absl::StrCat("shardmq version ", version));
  add("uptime", absl::StrCat(static_cast<uint64_t>(uptime_seconds), " seconds"));
  // Messages are PUBLISH packets here (Mosquitto's messages/* count every
  // packet; its publish/messages/* are these).
  add("messages/received", num(s.messages_received));
  add("messages/sent", num(s.messages_sent));
  add("publish/messages/received", num(s.messages_received));
  add("publish/messages/sent", num(s.messages_sent));
  const uint64_t dropped =
      s.dropped_queue_full + s.dropped_qos0_slow + s.dropped_expired + s.dropped_too_large;
  add("publish/messages/dropped", num(dropped));
  add("publish/bytes/received", num(Sum(s.publish_bytes_received_qos)));
  add("publish/bytes/sent", num(Sum(s.publish_bytes_sent_qos)));
  add("bytes/received", num(s.bytes_received));
  add("bytes/sent", num(s.bytes_sent));
  add("connections/total", num(s.connections_accepted));
  add("connections/refused",
      num(s.refused_max_connections + s.refused_listener_max_connections + s.refused_per_address +
          s.refused_connect_rate + s.refused_proxy_header + s.auth_failures));
  if (gauges != nullptr && !gauges->empty()) {
    ShardGauges total;
    for (const ShardGauges& g : *gauges) {
      total.clients_connected += g.clients_connected;
      total.sessions += g.sessions;
      total.subscriptions += g.subscriptions;
      total.inflight += g.inflight;
      total.queued += g.queued;
      total.queued_bytes += g.queued_bytes;
    }
    total.retained = gauges->front().retained;  // every shard holds them all
    add("clients/connected", num(total.clients_connected));
    add("clients/active", num(total.clients_connected));  // Mosquitto's older name
    add("clients/total", num(total.sessions));
    add("clients/disconnected",
        num(total.sessions - std::min(total.sessions, total.clients_connected)));
    add("subscriptions/count", num(total.subscriptions));
    add("retained messages/count", num(total.retained));
    add("messages/inflight", num(total.inflight));
    add("messages/queued", num(total.queued));
    add("store/messages/count", num(total.retained + total.queued + total.inflight));
  }
  struct Named {
    const char* topic;
    SysLoad::Series series;
  };
  for (const Named& n : {Named{"load/messages/received", SysLoad::kMessagesReceived},
                         Named{"load/messages/sent", SysLoad::kMessagesSent},
                         Named{"load/publish/received", SysLoad::kMessagesReceived},
                         Named{"load/publish/sent", SysLoad::kMessagesSent},
                         Named{"load/publish/dropped", SysLoad::kPublishDropped},
                         Named{"load/bytes/received", SysLoad::kBytesReceived},
                         Named{"load/bytes/sent", SysLoad::kBytesSent},
                         Named{"load/connections", SysLoad::kConnections}}) {
    const SysLoad::Rates& r = load.rates(n.series);
    add(absl::StrCat(n.topic, "/1min"), Rate(r.one));
    add(absl::StrCat(n.topic, "/5min"), Rate(r.five));
    add(absl::StrCat(n.topic, "/15min"), Rate(r.fifteen));
  }
  return out;
}

}  // namespace shardmq::admin
