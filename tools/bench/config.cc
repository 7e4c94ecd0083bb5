#include "config.h"

#include "absl/strings/str_format.h"
#include "broker/client_id.h"
#include "stamp.h"

namespace shardmq::bench {
namespace {

struct Name {
  const char* text;
  Scenario value;
};
constexpr Name kNames[] = {{"fanout", Scenario::kFanout},
                           {"fanin", Scenario::kFanin},
                           {"p2p", Scenario::kP2p},
                           {"conn", Scenario::kConn},
                           {"retained", Scenario::kRetained}};

absl::Status Bad(const char* flag, std::string_view why) {
  return absl::InvalidArgumentError(absl::StrFormat("--%s: %s", flag, why));
}

}  // namespace

bool ParseScenario(std::string_view text, Scenario* out) {
  for (const Name& n : kNames) {
    if (text == n.text) {
      *out = n.value;
      return true;
    }
  }
  return false;
}

const char* ScenarioName(Scenario s) {
  for (const Name& n : kNames) {
    if (n.value == s) return n.text;
  }
  return "?";
}

absl::Status Validate(const Config& c) {
  if (c.host.empty()) return Bad("host", "must not be empty");
  if (c.port < 1 || c.port > 65535)
    return Bad("port", absl::StrFormat("%d is not 1..65535", c.port));
  if (c.sub_port < 0 || c.sub_port > 65535)
    return Bad("sub_port", absl::StrFormat("%d is not 1..65535 (0: --port)", c.sub_port));
  if (c.settle_ns < 0) return Bad("settle", "must not be negative");
  if (c.mqtt_version < 3 || c.mqtt_version > 5) {
    return Bad("mqtt-version", absl::StrFormat("%d is not 3, 4 or 5", c.mqtt_version));
  }
  if (c.qos < 0 || c.qos > 2) return Bad("qos", absl::StrFormat("%d is not 0, 1 or 2", c.qos));
  if (c.payload < static_cast<int>(kStampSize) || c.payload > 16 * 1024 * 1024) {
    return Bad("payload", absl::StrFormat("%d is not %d..16777216 (the stamp needs %d bytes)",
                                          c.payload, kStampSize, kStampSize));
  }
  if (c.publishers < 1 || c.publishers > 1'000'000) {
    return Bad("publishers", absl::StrFormat("%d is not 1..1000000", c.publishers));
  }
  if (c.subscribers < 1 || c.subscribers > 1'000'000) {
    return Bad("subscribers", absl::StrFormat("%d is not 1..1000000", c.subscribers));
  }
  if (c.pairs < 1 || c.pairs > 1'000'000) {
    return Bad("pairs", absl::StrFormat("%d is not 1..1000000", c.pairs));
  }
  if (c.topics < 1) return Bad("topics", absl::StrFormat("%d is not >= 1", c.topics));
  if (c.scenario == Scenario::kFanout && c.topics > c.subscribers) {
    return Bad("topics", absl::StrFormat("%d topics but only %d subscribers: some topic would "
                                         "have no subscriber",
                                         c.topics, c.subscribers));
  }
  if (c.shared && c.scenario != Scenario::kFanin) return Bad("shared", "only applies to fanin");
  if (!c.shared && c.scenario == Scenario::kFanin && c.subscribers != 1) {
    return Bad("subscribers", "fanin without --shared has exactly 1 subscriber");
  }
  if (c.rate < 0) return Bad("rate", absl::StrFormat("%g is negative", c.rate));
  if (c.inflight < 0 || c.inflight > 32768) {
    return Bad("inflight",
               absl::StrFormat("%d is not 0..32768 (packet ids must not wrap onto one in flight)",
                               c.inflight));
  }
  if (c.duration_ns <= 0) return Bad("duration", "must be positive");
  if (c.warmup_ns < 0) return Bad("warmup", "must not be negative");
  if (c.drain_ns <= 0) return Bad("drain", "must be positive");
  if (c.connect_timeout_ns <= 0) return Bad("connect-timeout", "must be positive");
  if (c.threads < 1 || c.threads > 256) {
    return Bad("threads", absl::StrFormat("%d is not 1..256", c.threads));
  }
  if (c.connections < 1 || c.connections > 1'000'000) {
    return Bad("connections", absl::StrFormat("%d is not 1..1000000", c.connections));
  }
  if (c.conn_rate < 0) return Bad("conn-rate", absl::StrFormat("%g is negative", c.conn_rate));
  if (c.conn_parallel < 1) return Bad("conn-parallel", "must be >= 1");
  if (c.retained < 1 || c.retained > 10'000'000) {
    return Bad("retained", absl::StrFormat("%d is not 1..10000000", c.retained));
  }
  if (c.broker_pid < 0) return Bad("broker-pid", "must not be negative");
  if (c.keepalive < 0 || c.keepalive > 65535) return Bad("keepalive", "is not 0..65535");
  if (c.allow_loss && c.strict) return Bad("strict", "contradicts --allow-loss");
  if (c.home_shards < 0 || c.home_shards > 1024) return Bad("home-shards", "is not 0..1024");
  for (auto [name, v] :
       {std::pair{"pub-shard", c.pub_shard}, std::pair{"sub-shard", c.sub_shard}}) {
    if (v >= 0 && v >= c.home_shards) {
      return Bad(name, absl::StrFormat("%d needs --home-shards > %d", v, v));
    }
    if (v < -1) return Bad(name, "must be -1 (any) or a shard");
  }
  return absl::OkStatus();
}

std::string IdOnShard(std::string base, int shard, int shard_count) {
  if (shard < 0 || shard_count <= 1 || broker::HomeShard(base, shard_count) == shard) return base;
  for (int n = 0;; ++n) {
    std::string id = absl::StrFormat("%s-h%d", base, n);
    if (broker::HomeShard(id, shard_count) == shard) return id;
  }
}

}  // namespace shardmq::bench
