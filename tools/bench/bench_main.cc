// shardmq-bench: the bundled MQTT load generator. Flags become a Config,
// RunScenario does the work, the result is printed as a table or JSON and
// the exit code says whether the broker behaved (see report.h).
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "config.h"
#include "report.h"
#include "runner.h"

ABSL_FLAG(std::string, scenario, "fanout", "fanout, fanin, p2p, conn or retained");
ABSL_FLAG(std::string, host, "127.0.0.1", "broker host");
ABSL_FLAG(int, port, 1883, "broker port");
ABSL_FLAG(std::string, sub_host, "",
          "subscribers' broker host (another cluster node); default --host");
ABSL_FLAG(int, sub_port, 0, "subscribers' broker port (another cluster node); 0 = --port");
ABSL_FLAG(absl::Duration, settle, absl::ZeroDuration(),
          "pause after the last SUBACK before publishing (cluster bindings)");
ABSL_FLAG(int, mqtt_version, 4, "3 (3.1), 4 (3.1.1) or 5 (5.0)");
ABSL_FLAG(int, qos, 0, "QoS of PUBLISH and SUBSCRIBE: 0, 1 or 2");
ABSL_FLAG(int, payload, 64, "payload bytes (>= 24: the stamp)");
ABSL_FLAG(int, publishers, 1, "fanout/fanin: publishers");
ABSL_FLAG(int, subscribers, 1, "fanout: subscribers; fanin --shared: members of the $share group");
ABSL_FLAG(int, pairs, 1, "p2p: publisher/subscriber pairs, one topic each");
ABSL_FLAG(int, topics, 1, "fanout: topics; publisher p and subscriber s use topic p%T / s%T");
ABSL_FLAG(bool, shared, false, "fanin: subscribers share one $share/smqb/... subscription");
ABSL_FLAG(double, rate, 0, "msgs/s per publisher (open loop); 0 = as fast as --inflight allows");
ABSL_FLAG(int, inflight, 0,
          "window per publisher: unacknowledged QoS>=1 PUBLISHes, or QoS 0 "
          "PUBLISHes not yet confirmed by a PINGREQ round trip; 0 = 1000 for "
          "QoS 0, 100 for QoS 1/2");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10), "measured time (after the warm-up)");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1), "publishing time before measuring");
ABSL_FLAG(absl::Duration, drain, absl::Seconds(5), "longest wait for outstanding messages");
ABSL_FLAG(absl::Duration, connect_timeout, absl::Seconds(10), "longest wait for CONNACK/SUBACK");
ABSL_FLAG(int, threads, 1, "load generator threads (each an epoll loop over many connections)");
ABSL_FLAG(int, connections, 1000, "conn: connections to open and hold");
ABSL_FLAG(double, conn_rate, 0, "conn: new connections/s; 0 = as fast as possible");
ABSL_FLAG(int, conn_parallel, 256, "handshakes in flight at once");
ABSL_FLAG(int, retained, 1000, "retained: retained messages (one topic each)");
ABSL_FLAG(std::string, client_prefix, "",
          "client id prefix (ids are <prefix>p<i>, s<i>, c<i>); "
          "default smqb<pid>-");
ABSL_FLAG(int, home_shards, 0,
          "shardmq's --shards, for --pub-shard/--sub-shard (ids hash to a home shard)");
ABSL_FLAG(int, pub_shard, -1, "publishers' home shard (needs --home-shards); -1 = any");
ABSL_FLAG(int, sub_shard, -1, "subscribers' home shard (needs --home-shards); -1 = any");
ABSL_FLAG(std::string, topic_prefix, "", "topic prefix; default bench/<pid>");
ABSL_FLAG(int, broker_pid, 0, "broker process: report its CPU and RSS from /proc");
ABSL_FLAG(int, keepalive, 0, "CONNECT keep alive seconds (0 = off)");
ABSL_FLAG(int64_t, session_expiry, 0,
          "subscribers' sessions: 0 = clean; N > 0 = persistent (3.x: Clean Session 0; "
          "MQTT 5: Clean Start 0 and Session Expiry Interval N s)");
ABSL_FLAG(bool, json, false, "print one JSON object instead of the table");
ABSL_FLAG(bool, progress, true, "a progress line on stderr every second");
ABSL_FLAG(bool, allow_loss, false, "lost messages do not fail the run (dup/reorder still do)");
ABSL_FLAG(bool, strict, false, "QoS 0 loss or duplication fails the run too");

namespace shardmq::bench {
namespace {

// Abseil flag names use '_'; users (and the issue) spell them with '-', as
// emqtt-bench and the daemon do. Accept both by rewriting "--a-b" names.
std::vector<std::string> DashesToUnderscores(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  for (size_t i = 1; i < args.size(); ++i) {
    std::string& a = args[i];
    if (a == "--") break;
    if (a.size() < 3 || a[0] != '-' || a[1] != '-') continue;
    const size_t end = std::min(a.find('='), a.size());
    for (size_t j = 2; j < end; ++j) {
      if (a[j] == '-') a[j] = '_';
    }
  }
  return args;
}

int Main(int argc, char** argv) {
  std::vector<std::string> fixed = DashesToUnderscores(argc, argv);
  std::vector<char*> fixed_argv;
  for (std::string& a : fixed) fixed_argv.push_back(a.data());
  fixed_argv.push_back(nullptr);
  argv = fixed_argv.data();
  absl::SetProgramUsageMessage(
      "MQTT load generator. Example:\n  shardmq-bench --scenario=p2p --pairs=20 --qos=1 "
      "--port=1883 --duration=10s --json");
  absl::ParseCommandLine(argc, argv);
  Config c;
  if (!ParseScenario(absl::GetFlag(FLAGS_scenario), &c.scenario)) {
    std::fprintf(stderr,
                 "shardmq-bench: --scenario: '%s' is not fanout, fanin, p2p, conn or "
                 "retained\n",
                 absl::GetFlag(FLAGS_scenario).c_str());
    return kExitUsage;
  }
  c.host = absl::GetFlag(FLAGS_host);
  c.port = absl::GetFlag(FLAGS_port);
  c.sub_host = absl::GetFlag(FLAGS_sub_host);
  c.sub_port = absl::GetFlag(FLAGS_sub_port);
  c.settle_ns = absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_settle));
  c.mqtt_version = absl::GetFlag(FLAGS_mqtt_version);
  c.qos = absl::GetFlag(FLAGS_qos);
  c.payload = absl::GetFlag(FLAGS_payload);
  c.publishers = absl::GetFlag(FLAGS_publishers);
  c.subscribers = absl::GetFlag(FLAGS_subscribers);
  c.pairs = absl::GetFlag(FLAGS_pairs);
  c.topics = absl::GetFlag(FLAGS_topics);
  c.shared = absl::GetFlag(FLAGS_shared);
  c.rate = absl::GetFlag(FLAGS_rate);
  c.inflight = absl::GetFlag(FLAGS_inflight);
  c.duration_ns = absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_duration));
  c.warmup_ns = absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_warmup));
  c.drain_ns = absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_drain));
  c.connect_timeout_ns = absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_connect_timeout));
  c.threads = absl::GetFlag(FLAGS_threads);
  c.connections = absl::GetFlag(FLAGS_connections);
  c.conn_rate = absl::GetFlag(FLAGS_conn_rate);
  c.conn_parallel = absl::GetFlag(FLAGS_conn_parallel);
  c.retained = absl::GetFlag(FLAGS_retained);
  c.client_prefix = absl::GetFlag(FLAGS_client_prefix);
  c.topic_prefix = absl::GetFlag(FLAGS_topic_prefix);
  c.home_shards = absl::GetFlag(FLAGS_home_shards);
  c.pub_shard = absl::GetFlag(FLAGS_pub_shard);
  c.sub_shard = absl::GetFlag(FLAGS_sub_shard);
  c.broker_pid = absl::GetFlag(FLAGS_broker_pid);
  c.keepalive = absl::GetFlag(FLAGS_keepalive);
  const int64_t session_expiry = absl::GetFlag(FLAGS_session_expiry);
  if (session_expiry < 0 || session_expiry > 0xFFFFFFFFLL) {
    std::fprintf(stderr, "shardmq-bench: --session-expiry: %lld is not 0..4294967295\n",
                 static_cast<long long>(session_expiry));
    return kExitUsage;
  }
  c.session_expiry = static_cast<uint32_t>(session_expiry);
  c.json = absl::GetFlag(FLAGS_json);
  c.progress = absl::GetFlag(FLAGS_progress);
  c.allow_loss = absl::GetFlag(FLAGS_allow_loss);
  c.strict = absl::GetFlag(FLAGS_strict);
  if (absl::Status s = Validate(c); !s.ok()) {
    std::fprintf(stderr, "shardmq-bench: %s\n", std::string(s.message()).c_str());
    return kExitUsage;
  }

  // Many connections need many descriptors; a failed send must be an error
  // code, not a signal.
  rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }
  signal(SIGPIPE, SIG_IGN);

  const Results r = RunScenario(c);
  const std::string text = c.json ? FormatJson(r) + "\n" : FormatTable(r);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  const int code = ExitCode(r);
  if (!r.error.empty()) {
    std::fprintf(stderr, "shardmq-bench: %s\n", r.error.c_str());
  } else if (code != kExitOk) {
    std::fprintf(stderr, "shardmq-bench: FAILED against %s:%d: %s\n", c.host.c_str(), c.port,
                 IntegrityFailure(r).c_str());
  }
  return code;
}

}  // namespace
}  // namespace shardmq::bench

int main(int argc, char** argv) { return shardmq::bench::Main(argc, argv); }
