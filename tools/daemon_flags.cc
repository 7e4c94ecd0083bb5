#include "daemon_flags.h"

#include <sched.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string_view>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "auth/challenge_authenticator.h"
#include "config_file.h"
#include "net/listen_address.h"

ABSL_FLAG(std::string, config, "",
          "TOML file setting any of the flags below: keys are the flag names with underscores "
          "(max_packet_size = 65536), listeners are [[listener]] tables with address and "
          "protocol (tcp, tls, ws, wss; unix with path); see tools/shardmq.example.toml. Flags "
          "given on the command line override the file. SIGHUP re-reads it and applies "
          "--log-level, --password-file and --acl-file; other changes need a restart.");
ABSL_FLAG(int32_t, shards, 0,
          "Number of shards (threads, each with its own io_uring ring). 0 = one per CPU the "
          "process may run on.");
ABSL_FLAG(std::vector<std::string>, listen, {"127.0.0.1:1883"},
          "Address to accept MQTT connections on: host:port, tcp://host:port, "
          "tls://host:port (needs --tls-cert and --tls-key), or MQTT over WebSocket: "
          "ws://host:port/path or wss://host:port/path (over TLS; the path defaults to /mqtt), "
          "or a unix-domain socket: unix:///path/to.sock (a stale socket file is replaced, "
          "and the file is removed on exit); IPv6 as [addr]:port. Options follow '?', joined "
          "by '&': max_connections=N (open at once on this listener), and for unix:// "
          "mode=0660 and owner=user[:group] of the socket file, e.g. "
          "unix:///run/shardmq/mqtt.sock?mode=0660&owner=mqtt:mqtt. Repeat the "
          "flag (or separate with commas) for several listeners. The default is loopback "
          "only; to serve the network, give e.g. --listen=0.0.0.0:1883 and --password-file. "
          "Option proxy_protocol=true (tcp://0.0.0.0:1883?proxy_protocol=true, also for tls, "
          "ws, wss): every connection must start with a PROXY protocol v1 or v2 header (HAProxy, "
          "cloud load balancers), and the client's address is the one in it (logs, hooks, the "
          "admin API, --max-connections-per-address); one without is refused. Only behind a "
          "balancer you trust: whoever reaches the port can claim any address.");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain for tls:// and wss:// listeners (TLS 1.2 and 1.3).");
ABSL_FLAG(std::string, tls_key, "", "PEM private key matching --tls-cert.");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA certificates: tls:// listeners ask for a client certificate and verify one "
          "that is presented; its subject CN (else first DNS SAN) identifies the client.");
ABSL_FLAG(bool, tls_require_client_cert, false,
          "Refuse TLS clients without a certificate signed by --tls-ca.");
ABSL_FLAG(bool, tls_identity_as_username, false,
          "On tls:// listeners the client certificate's identity (subject CN, else first DNS "
          "SAN) is the user name, whatever CONNECT says: the ACL's user sections and %u apply "
          "to it, and --password-file is not asked (the certificate authenticated it). TLS "
          "clients without a certificate are refused (MQTT 5 0x87, 3.1.1 0x05). Needs "
          "--tls-ca. Mosquitto's use_identity_as_username.");
ABSL_FLAG(std::string, cpu_affinity, "none",
          "CPUs to pin shard threads to, shard i on the i-th CPU of the list (cycled): "
          "\"auto\" (the CPUs the process may run on), \"none\", or a list like 0,2,4-7.");
ABSL_FLAG(uint32_t, max_connections, 1000000,
          "Connections open at once over all shards; more are closed on accept.");
ABSL_FLAG(uint32_t, max_connections_per_address, 0,
          "Connections one source address may have open at once (0 = no limit); more are "
          "closed on accept, counted and logged.");
ABSL_FLAG(uint32_t, max_connect_rate_per_address, 0,
          "New connections one source address may open per second, a second's worth at once "
          "(0 = no limit); faster ones are closed on accept, counted and logged.");
ABSL_FLAG(uint32_t, max_publish_rate, 0,
          "PUBLISH packets per second one client may send, a second's worth at once (0 = no "
          "limit); a faster client is throttled: the broker stops reading from it until it is "
          "within the rate. An ACL file's `limit publish_rate` can set a user's own.");
ABSL_FLAG(uint64_t, max_publish_bytes_rate, 0,
          "Topic + payload bytes per second one client may publish (0 = no limit); a faster "
          "client is throttled like --max-publish-rate.");
ABSL_FLAG(uint32_t, max_packet_size, 1 << 20,
          "Largest MQTT packet accepted from a client, in bytes (at most 268435460); larger "
          "packets close the connection.");
ABSL_FLAG(uint32_t, max_inflight, 128,
          "QoS 1/2 messages sent to one client and not yet acknowledged (1-65535).");
ABSL_FLAG(uint32_t, max_queued_messages, 1000,
          "Messages queued for one client (waiting for an in-flight slot, or while a persistent "
          "session is offline); more are dropped and counted.");
ABSL_FLAG(uint64_t, max_queued_bytes, 16 << 20, "Payload bytes queued for one client.");
ABSL_FLAG(bool, queue_qos0_offline, false,
          "Queue QoS 0 messages for offline persistent sessions too.");
ABSL_FLAG(uint64_t, max_outbound_bytes, 4 << 20,
          "Bytes waiting in one connection's send queue beyond which QoS 0 messages to it are "
          "dropped (a slow subscriber must not grow the broker).");
ABSL_FLAG(uint32_t, max_subscriptions_per_client, 10000, "Topic filters one client may hold.");
ABSL_FLAG(uint32_t, max_topic_length, 65535, "Longest topic name or filter, in bytes (1-65535).");
ABSL_FLAG(uint32_t, max_topic_levels, 128, "Most levels in a topic name or filter (1-65535).");
ABSL_FLAG(uint32_t, batch_wait_us, 0,
          "Batched waiting (microseconds, 0-100000; 0 = off): an idle shard waits for many "
          "completions or this long, trading up to this much latency for less CPU per "
          "message at low rates. Needs Linux 6.12; ignored elsewhere.");
ABSL_FLAG(std::string, data_dir, "",
          "Directory for durable state (each shard logs into <data-dir>/shard-N/): persistent "
          "sessions with their subscriptions and queued messages, and retained messages, survive "
          "restarts and crashes. Empty: memory only, a restart forgets them.");
ABSL_FLAG(
    std::string, durability, "async",
    "With --data-dir: \"async\" writes every change to the kernel each loop turn and "
    "fdatasyncs at most every --durability-flush-ms without delaying acknowledgements (a "
    "broker crash loses at most its last loop turn, a power loss at most that interval); "
    "\"sync\" sends PUBACK/PUBREC, SUBACK and the QoS 2 handshake only once what they promise "
    "is on stable storage (nothing acknowledged is lost); \"none\" stores nothing.");
ABSL_FLAG(uint32_t, durability_flush_ms, 100,
          "--durability=async: the longest a written change waits for its fdatasync "
          "(1-60000 ms).");
ABSL_FLAG(bool, salvage, false,
          "Start even if a log in --data-dir is damaged in the middle: recover the readable "
          "records around the damage, log each skipped stretch and rewrite the data directory "
          "from what was recovered (without it start-up stops naming the file and offset).");
ABSL_FLAG(uint32_t, durability_compact_mb, 64,
          "A shard snapshots its live state and deletes the log before it once it has logged "
          "this many MiB since its last snapshot (and twice that snapshot's size) (1-65536).");
ABSL_FLAG(std::string, max_memory, "0",
          "Memory for queued messages (bytes, or with a K, M, G or T suffix; 0 = no limit). "
          "Beyond it, new QoS 1/2 messages for offline persistent sessions are kept only in the "
          "log and read back when their client returns, so absent clients cannot exhaust "
          "memory. Needs --data-dir and --durability async or sync.");
ABSL_FLAG(uint32_t, topic_alias_maximum, 64,
          "MQTT 5 topic aliases each client may define for its PUBLISHes (0-65535; 0: none).");
ABSL_FLAG(bool, validate_utf8_payload, false,
          "Disconnect (0x99) a client whose PUBLISH says its payload is UTF-8 when it is not.");
ABSL_FLAG(uint32_t, connect_timeout_ms, 10000,
          "A socket that has not sent a complete CONNECT by then is closed.");
ABSL_FLAG(std::vector<std::string>, deny_subscribe, {},
          "Topic filters clients may not subscribe to, comma-separated, compared as written: "
          "SUBACK refuses them (0x80). A stand-in for ACLs.");
ABSL_FLAG(uint32_t, max_session_expiry, 0xFFFFFFFF,
          "Longest Session Expiry Interval, in seconds, granted to an MQTT 5 client; one asking "
          "more is told the granted value in CONNACK. 4294967295 = no cap. MQTT 3.x persistent "
          "sessions never expire.");
ABSL_FLAG(uint32_t, max_keepalive, 65535,
          "Longest Keep Alive, in seconds, an MQTT 5 client may use (1-65535); one asking more, "
          "or 0, gets this as Server Keep Alive in CONNACK. 65535 = no cap. MQTT 3.x clients "
          "cannot be told, so they keep their own.");
ABSL_FLAG(uint32_t, receive_maximum, 1024,
          "Unreleased QoS 2 PUBLISH packets one MQTT 5 client may have in flight to the broker "
          "(1-65535), advertised as Receive Maximum; more close the connection (0x93).");
ABSL_FLAG(uint32_t, max_qos, 2,
          "Highest QoS accepted in PUBLISH and wills (0-2), advertised as Maximum QoS.");
ABSL_FLAG(bool, retain_available, true,
          "Accept retained messages; --retain-available=false refuses PUBLISH and wills with "
          "RETAIN (advertised as Retain Available 0).");
ABSL_FLAG(std::string, redirect, "none",
          "Send every client elsewhere: \"moved\" (MQTT 5 CONNACK 0x9D, server moved) or "
          "\"use-another\" (0x9C, use another server), with --server-reference; MQTT 3.x "
          "clients get 0x03, server unavailable. \"none\" serves clients.");
ABSL_FLAG(std::string, server_reference, "",
          "Where --redirect sends MQTT 5 clients: HOST or HOST:PORT (several separated by "
          "spaces), sent as the Server Reference property.");
ABSL_FLAG(std::string, response_information, "",
          "Prefix for the MQTT 5 Response Information a client gets when it asks for it: the "
          "prefix followed by its client id. Empty: not offered.");
ABSL_FLAG(std::string, auth_method_demo, "",
          "A secret enabling the example MQTT 5 enhanced authentication method "
          "\"shardmq-challenge\" (the client answers a nonce with hex HMAC-SHA256(secret, "
          "nonce)). An illustration of the authentication hook, not a security feature.");
ABSL_FLAG(std::string, password_file, "",
          "Mosquitto-format password file (user:hash lines, as mosquitto_passwd or "
          "shardmq-passwd write them). Clients with a user name must give its password. "
          "Reloaded on SIGHUP.");
ABSL_FLAG(std::string, acl_file, "",
          "Mosquitto-format ACL file (user / topic / pattern / limit lines) checked on "
          "PUBLISH, SUBSCRIBE and each delivery. Reloaded on SIGHUP.");
ABSL_FLAG(std::string, allow_anonymous, "auto",
          "Accept clients without a (checked) user name: true, false, or auto = true only "
          "when no --password-file is given and every --listen address is loopback "
          "(127.0.0.0/8 or ::1), false otherwise, so a broker reachable from the network is "
          "never open by default. A bare --allow-anonymous means true. A client authenticated "
          "by its certificate (--tls-identity-as-username) is not anonymous.");
ABSL_FLAG(uint32_t, sys_interval, 10,
          "Seconds between $SYS/broker/... updates (Mosquitto's layout: uptime, "
          "clients/connected, messages/received, load/..., published retained through the "
          "normal routing, so ACLs apply to readers). 0 = no $SYS topics.");
ABSL_FLAG(std::string, http_listen, "",
          "Address for the admin HTTP server: host:port, or https://host:port for HTTPS with "
          "--tls-cert and --tls-key. Serves /metrics (Prometheus), /healthz and the JSON API "
          "under /api/v1/. Empty = off.");
ABSL_FLAG(std::string, http_token, "",
          "Bearer token the admin HTTP server asks of every request (Authorization: Bearer "
          "TOKEN). Without a token it serves only a loopback --http-listen. Prefer "
          "--http-token-file: a command line is visible to other users.");
ABSL_FLAG(std::string, http_token_file, "",
          "File holding the admin HTTP bearer token (surrounding white space ignored).");
ABSL_FLAG(std::string, cluster_amqp, "",
          "Run as one node of a cluster whose nodes exchange messages through RabbitMQ: "
          "amqp://user:pass@host:port/vhost (README \"Cluster\"). Needs --node-id. Empty: "
          "a single broker.");
ABSL_FLAG(std::string, node_id, "",
          "This node's name in the cluster (letters, digits, '-', '_', '.'; at most 200 "
          "bytes), unique among the nodes: its RabbitMQ queue is shardmq.node.<id>.");
ABSL_FLAG(std::string, cluster_exchange, "shardmq",
          "The RabbitMQ topic exchange the nodes of a cluster share.");
ABSL_FLAG(uint32_t, cluster_buffer, 100000,
          "Messages for other nodes held while RabbitMQ is slow or away (1-10000000); over "
          "it QoS 0 messages are dropped first, and drops are logged.");
ABSL_FLAG(std::string, cluster_redis, "",
          "Keep the cluster's shared state in Redis: redis://[:password@]host:port[/db] "
          "(README \"Cluster\"): which node owns each client id, persistent sessions and "
          "their queued messages, retained messages. Needs --cluster-amqp; not with "
          "--data-dir (Redis holds that state instead).");
ABSL_FLAG(uint32_t, cluster_lease_ms, 10000,
          "--cluster-redis: how long a node that stopped answering keeps its client ids "
          "before other nodes adopt its sessions (300-600000 ms).");
ABSL_FLAG(std::string, log_level, "info",
          "Least severe log level written: debug, info, "
          "warning or error.");

namespace shardmq::daemon {
namespace {

// Flags in the order --help shows them.
constexpr std::string_view kFlagOrder[] = {"config",
                                           "shards",
                                           "listen",
                                           "tls_cert",
                                           "tls_key",
                                           "tls_ca",
                                           "tls_require_client_cert",
                                           "tls_identity_as_username",
                                           "cpu_affinity",
                                           "max_connections",
                                           "max_connections_per_address",
                                           "max_connect_rate_per_address",
                                           "max_publish_rate",
                                           "max_publish_bytes_rate",
                                           "batch_wait_us",
                                           "data_dir",
                                           "durability",
                                           "durability_flush_ms",
                                           "durability_compact_mb",
                                           "salvage",
                                           "max_memory",
                                           "max_packet_size",
                                           "max_inflight",
                                           "max_queued_messages",
                                           "max_queued_bytes",
                                           "queue_qos0_offline",
                                           "max_outbound_bytes",
                                           "max_subscriptions_per_client",
                                           "max_topic_length",
                                           "max_topic_levels",
                                           "connect_timeout_ms",
                                           "deny_subscribe",
                                           "topic_alias_maximum",
                                           "validate_utf8_payload",
                                           "max_session_expiry",
                                           "max_keepalive",
                                           "receive_maximum",
                                           "max_qos",
                                           "retain_available",
                                           "redirect",
                                           "server_reference",
                                           "response_information",
                                           "auth_method_demo",
                                           "password_file",
                                           "acl_file",
                                           "allow_anonymous",
                                           "sys_interval",
                                           "http_listen",
                                           "http_token",
                                           "http_token_file",
                                           "cluster_amqp",
                                           "node_id",
                                           "cluster_exchange",
                                           "cluster_buffer",
                                           "cluster_redis",
                                           "cluster_lease_ms",
                                           "log_level"};

std::string DashedName(std::string_view name) {
  std::string dashed(name);
  std::replace(dashed.begin(), dashed.end(), '_', '-');
  return dashed;
}

// Where each flag's value came from, for messages: "FILE:LINE: key" for one
// set by the config file; absent for the command line and defaults.
using Sources = std::map<std::string, std::string, std::less<>>;

// "--max-packet-size=10: why", or "shardmq.toml:3: max_packet_size = 10: why"
// when the value came from the config file.
absl::Status FlagError(const Sources& sources, std::string_view name, std::string_view value,
                       std::string_view why) {
  if (auto it = sources.find(name); it != sources.end()) {
    return absl::InvalidArgumentError(absl::StrFormat("%s = %s: %s", it->second, value, why));
  }
  return absl::InvalidArgumentError(absl::StrFormat("--%s=%s: %s", DashedName(name), value, why));
}

// "0", "1048576", "512M", "2G", "64KiB": bytes (K/M/G/T are powers of 1024).
std::optional<uint64_t> ParseByteSize(std::string_view text) {
  uint64_t value = 0;
  size_t i = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    if (value > (UINT64_MAX - 9) / 10) return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(text[i] - '0');
  }
  if (i == 0) return std::nullopt;
  std::string unit = absl::AsciiStrToUpper(std::string(text.substr(i)));
  if (unit.ends_with("IB")) unit.resize(unit.size() - 2);
  if (unit.ends_with("B") && unit.size() > 1) unit.pop_back();
  int shift = 0;
  if (unit == "K") {
    shift = 10;
  } else if (unit == "M") {
    shift = 20;
  } else if (unit == "G") {
    shift = 30;
  } else if (unit == "T") {
    shift = 40;
  } else if (!unit.empty() && unit != "B") {
    return std::nullopt;
  }
  if (shift > 0 && value > (UINT64_MAX >> shift)) return std::nullopt;
  return value << shift;
}

// Checks that a numeric flag lies in [low, high]; the message names flag and value.
template <typename T>
absl::Status CheckRange(const Sources& sources, std::string_view name, T value, uint64_t low,
                        uint64_t high) {
  if (value < low || value > high) {
    return FlagError(sources, name, std::to_string(value),
                     absl::StrFormat("must be between %d and %d", low, high));
  }
  return absl::OkStatus();
}

// --cluster-amqp and its companions (README "Cluster").
absl::Status ClusterOptions(const Sources& sources, Options::Cluster& cluster) {
  cluster.amqp_url = absl::GetFlag(FLAGS_cluster_amqp);
  cluster.node_id = absl::GetFlag(FLAGS_node_id);
  cluster.exchange = absl::GetFlag(FLAGS_cluster_exchange);
  cluster.buffer_messages = absl::GetFlag(FLAGS_cluster_buffer);
  cluster.redis_url = absl::GetFlag(FLAGS_cluster_redis);
  cluster.lease_ms = absl::GetFlag(FLAGS_cluster_lease_ms);
  if (cluster.amqp_url.empty()) {
    if (!cluster.node_id.empty()) {
      return FlagError(sources, "node_id", cluster.node_id, "has no effect without --cluster-amqp");
    }
    if (!cluster.redis_url.empty()) {
      return FlagError(sources, "cluster_redis", cluster.redis_url, "needs --cluster-amqp");
    }
    return absl::OkStatus();
  }
  if (!cluster.redis_url.empty()) {
    if (!cluster.redis_url.starts_with("redis://")) {
      return FlagError(sources, "cluster_redis", cluster.redis_url,
                       "must be redis://[:password@]host:port[/db]");
    }
    if (!absl::GetFlag(FLAGS_data_dir).empty()) {
      return FlagError(sources, "cluster_redis", cluster.redis_url,
                       "cannot be combined with --data-dir: sessions and retained messages "
                       "live in Redis");
    }
    if (absl::Status lease =
            CheckRange(sources, "cluster_lease_ms", cluster.lease_ms, 300, 600'000);
        !lease.ok()) {
      return lease;
    }
  }
  if (!cluster.amqp_url.starts_with("amqp://")) {
    return FlagError(sources, "cluster_amqp", cluster.amqp_url,
                     "must be amqp://user:pass@host:port/vhost");
  }
  if (cluster.node_id.empty()) {
    return FlagError(sources, "cluster_amqp", cluster.amqp_url, "needs --node-id");
  }
  const bool name_ok = cluster.node_id.size() <= 200 &&
                       std::all_of(cluster.node_id.begin(), cluster.node_id.end(), [](char c) {
                         return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
                       });
  if (!name_ok) {
    return FlagError(sources, "node_id", cluster.node_id,
                     "must be at most 200 letters, digits, '-', '_' or '.'");
  }
  if (cluster.exchange.empty() || cluster.exchange.size() > 255) {
    return FlagError(sources, "cluster_exchange", cluster.exchange, "must be 1 to 255 bytes");
  }
  return CheckRange(sources, "cluster_buffer", cluster.buffer_messages, 1, 10'000'000);
}

// Every flag back to its default: a reload parses the command line and the
// file again from scratch, and tests parse many command lines in one process.
void ResetFlags() {
  for (std::string_view name : kFlagOrder) {
    absl::CommandLineFlag* flag =
        absl::FindCommandLineFlag(absl::string_view(name.data(), name.size()));
    std::string error;
    flag->ParseFrom(flag->DefaultValue(), &error);
  }
}

std::vector<int> AllowedCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
    }
  }
  return cpus;
}

bool ParseInt(std::string_view text, int* out) {
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return !text.empty() && error == std::errc() && end == text.data() + text.size();
}

}  // namespace

absl::StatusOr<std::vector<int>> ParseCpuList(std::string_view text) {
  std::vector<int> cpus;
  if (text == "none") return cpus;
  if (text == "auto") return AllowedCpus();
  for (absl::string_view part : absl::StrSplit(absl::string_view(text.data(), text.size()), ',')) {
    std::string_view item(part.data(), part.size());
    size_t dash = item.find('-');
    int first = 0;
    int last = 0;
    bool ok = dash == std::string_view::npos ? ParseInt(item, &first) && ParseInt(item, &last)
                                             : ParseInt(item.substr(0, dash), &first) &&
                                                   ParseInt(item.substr(dash + 1), &last);
    if (!ok || first < 0 || last < first || last >= CPU_SETSIZE) {
      return absl::InvalidArgumentError(
          absl::StrFormat("\"%s\" is not a CPU number or range like 4-7", item));
    }
    for (int cpu = first; cpu <= last; ++cpu) cpus.push_back(cpu);
  }
  return cpus;
}

absl::StatusOr<DaemonConfig> ParseDaemonFlags(int argc, char** argv) {
  ResetFlags();
  DaemonConfig config;
  // The command line first, only split into names and values: the config
  // file it names goes underneath it, whatever the order of the flags.
  struct Arg {
    std::string name;
    std::string value;
  };
  std::vector<Arg> args;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h" || arg == "--helpfull") {
      config.help = true;
      return config;
    }
    if (arg == "--version") {
      config.version = true;
      return config;
    }
    if (arg.size() < 3 || arg.substr(0, 2) != "--") {
      return absl::InvalidArgumentError(
          absl::StrFormat("unexpected argument \"%s\" (flags start with --; see --help)", arg));
    }
    arg.remove_prefix(2);
    size_t equals = arg.find('=');
    std::string name(arg.substr(0, equals));
    std::replace(name.begin(), name.end(), '-', '_');
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr ||
        std::find(std::begin(kFlagOrder), std::end(kFlagOrder), name) == std::end(kFlagOrder)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("unknown flag --%s (see --help)", DashedName(name)));
    }
    std::string value;
    if (equals != std::string_view::npos) {
      value = std::string(arg.substr(equals + 1));
    } else if (flag->IsOfType<bool>() || name == "allow_anonymous") {
      value = "true";  // a bare boolean flag turns it on
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return absl::InvalidArgumentError(absl::StrFormat("--%s needs a value", DashedName(name)));
    }
    if (name == "config") config.config_file = value;
    args.push_back({std::move(name), std::move(value)});
  }

  Sources sources;
  std::vector<std::string> listeners;
  std::vector<std::string> listener_sources;  // per listener: "FILE:LINE: key", or "" (flag)
  if (!config.config_file.empty()) {
    absl::StatusOr<std::vector<ConfigSetting>> settings =
        LoadConfigFile(config.config_file, ConfigurableFlags());
    if (!settings.ok()) return settings.status();
    for (const ConfigSetting& setting : *settings) {
      if (setting.flag == "listen") {
        listeners.push_back(setting.value);
        listener_sources.push_back(setting.where);
        continue;
      }
      sources[setting.flag] = setting.where;
      if (setting.flag == "deny_subscribe") {
        absl::SetFlag(&FLAGS_deny_subscribe, setting.items);
        continue;
      }
      absl::CommandLineFlag* flag = absl::FindCommandLineFlag(setting.flag);
      std::string error;
      if (!flag->ParseFrom(setting.value, &error)) {
        return FlagError(sources, setting.flag, setting.value, "not a valid value for this key");
      }
    }
  }

  std::vector<std::string> command_line_listeners;
  for (const Arg& arg : args) {
    // The command line overrides the file: a message about the value now
    // names the flag.
    sources.erase(arg.name);
    if (arg.name == "listen") {
      // Repeated --listen flags add up instead of replacing each other.
      for (absl::string_view part : absl::StrSplit(arg.value, ',', absl::SkipEmpty())) {
        command_line_listeners.emplace_back(part.data(), part.size());
      }
      continue;
    }
    std::string error;
    if (!absl::FindCommandLineFlag(arg.name)->ParseFrom(arg.value, &error)) {
      return FlagError(sources, arg.name, arg.value, "not a valid value for this flag");
    }
  }
  // --listen replaces the file's listeners rather than adding to them, as
  // every other flag replaces the file's value.
  if (!command_line_listeners.empty()) {
    listeners = std::move(command_line_listeners);
    listener_sources.assign(listeners.size(), "");
  }
  if (!listeners.empty()) absl::SetFlag(&FLAGS_listen, listeners);

  Options& options = config.options;
  options.shards = absl::GetFlag(FLAGS_shards);
  if (options.shards < 0 || options.shards > 1024) {
    return FlagError(sources, "shards", std::to_string(options.shards),
                     "must be between 0 and 1024");
  }
  if (options.shards == 0) {
    options.shards = std::max<int>(1, static_cast<int>(AllowedCpus().size()));
  }

  options.listeners = absl::GetFlag(FLAGS_listen);
  if (options.listeners.empty()) {
    return FlagError(sources, "listen", "", "at least one listener is needed");
  }
  bool any_tls = false;
  std::string not_loopback;  // the first listener others can reach, if any
  for (size_t i = 0; i < options.listeners.size(); ++i) {
    const std::string& listener = options.listeners[i];
    auto parsed = net::ParseListenAddress(listener);
    if (!parsed.ok()) {
      Sources listener_source;
      if (i < listener_sources.size() && !listener_sources[i].empty()) {
        listener_source["listen"] = listener_sources[i];
      }
      return FlagError(listener_source, "listen", listener, std::string(parsed.status().message()));
    }
    any_tls = any_tls || net::UsesTls(parsed->transport);
    if (not_loopback.empty() && !net::IsLoopback(*parsed)) not_loopback = listener;
  }
  options.tls.cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls.key_file = absl::GetFlag(FLAGS_tls_key);
  options.tls.ca_file = absl::GetFlag(FLAGS_tls_ca);
  options.tls.require_client_cert = absl::GetFlag(FLAGS_tls_require_client_cert);
  options.tls.identity_as_username = absl::GetFlag(FLAGS_tls_identity_as_username);
  // TLS settings without a TLS listener are almost certainly a forgotten
  // tls:// prefix: say so rather than serve plain TCP silently. The
  // certificate and key also serve an https:// admin server.
  const bool https_admin = absl::StartsWith(absl::GetFlag(FLAGS_http_listen), "https://");
  if (!any_tls && !https_admin) {
    if (!options.tls.cert_file.empty()) {
      return FlagError(sources, "tls_cert", options.tls.cert_file,
                       "has no effect without a tls:// --listen or an https:// --http-listen");
    }
    if (!options.tls.key_file.empty()) {
      return FlagError(sources, "tls_key", options.tls.key_file,
                       "has no effect without a tls:// --listen or an https:// --http-listen");
    }
  }
  if (https_admin && (options.tls.cert_file.empty() || options.tls.key_file.empty())) {
    return FlagError(sources, "http_listen", absl::GetFlag(FLAGS_http_listen),
                     "HTTPS needs --tls-cert and --tls-key");
  }
  if (!any_tls) {
    if (!options.tls.ca_file.empty()) {
      return FlagError(sources, "tls_ca", options.tls.ca_file,
                       "has no effect without a tls:// --listen");
    }
    if (options.tls.require_client_cert) {
      return FlagError(sources, "tls_require_client_cert", "true",
                       "has no effect without a tls:// --listen");
    }
    if (options.tls.identity_as_username) {
      return FlagError(sources, "tls_identity_as_username", "true",
                       "has no effect without a tls:// --listen");
    }
  }
  // Without a CA no client certificate is asked for: every TLS client would
  // be refused for lacking one.
  if (options.tls.identity_as_username && options.tls.ca_file.empty()) {
    return FlagError(sources, "tls_identity_as_username", "true",
                     "needs --tls-ca (the CA that verifies the client certificates it reads "
                     "the user name from)");
  }

  std::string cpu_text = absl::GetFlag(FLAGS_cpu_affinity);
  auto cpus = ParseCpuList(cpu_text);
  if (!cpus.ok()) {
    return FlagError(sources, "cpu_affinity", cpu_text, std::string(cpus.status().message()));
  }
  std::vector<int> allowed = AllowedCpus();
  for (int cpu : *cpus) {
    if (std::find(allowed.begin(), allowed.end(), cpu) == allowed.end()) {
      return FlagError(sources, "cpu_affinity", cpu_text,
                       absl::StrFormat("CPU %d is not one this process may run on (allowed: %s)",
                                       cpu, absl::StrJoin(allowed, ",")));
    }
  }
  options.cpu_affinity = *std::move(cpus);

  options.max_connections = absl::GetFlag(FLAGS_max_connections);
  if (options.max_connections == 0) {
    return FlagError(sources, "max_connections", "0", "must be at least 1");
  }
  options.max_connections_per_address = absl::GetFlag(FLAGS_max_connections_per_address);
  options.max_connect_rate_per_address = absl::GetFlag(FLAGS_max_connect_rate_per_address);

  options.batch_wait_us = absl::GetFlag(FLAGS_batch_wait_us);
  if (absl::Status status = CheckRange(sources, "batch_wait_us", options.batch_wait_us, 0, 100'000);
      !status.ok()) {
    return status;
  }

  Options::Durability& durability = options.durability;
  durability.data_dir = absl::GetFlag(FLAGS_data_dir);
  const std::string mode = absl::GetFlag(FLAGS_durability);
  if (mode == "none") {
    durability.mode = Options::Durability::Mode::kNone;
  } else if (mode == "async") {
    durability.mode = Options::Durability::Mode::kAsync;
  } else if (mode == "sync") {
    durability.mode = Options::Durability::Mode::kSync;
  } else {
    return FlagError(sources, "durability", mode, "must be none, async or sync");
  }
  if (mode == "sync" && durability.data_dir.empty()) {
    // Asked for the strongest promise with nowhere to keep it.
    return FlagError(sources, "durability", mode, "needs --data-dir");
  }
  durability.flush_interval_ms = absl::GetFlag(FLAGS_durability_flush_ms);
  durability.salvage = absl::GetFlag(FLAGS_salvage);
  const uint32_t compact_mb = absl::GetFlag(FLAGS_durability_compact_mb);
  if (absl::Status status = CheckRange(sources, "durability_compact_mb", compact_mb, 1, 65'536);
      !status.ok()) {
    return status;
  }
  durability.compaction_bytes = uint64_t{compact_mb} << 20;
  const std::string max_memory = absl::GetFlag(FLAGS_max_memory);
  std::optional<uint64_t> max_memory_bytes = ParseByteSize(max_memory);
  if (!max_memory_bytes.has_value()) {
    return FlagError(sources, "max_memory", max_memory,
                     "not a size (bytes, or a number with K, M, G or T)");
  }
  if (*max_memory_bytes != 0 && !durability.enabled()) {
    // Messages beyond the budget live in the log: without one there is
    // nowhere to put them.
    return FlagError(sources, "max_memory", max_memory,
                     "needs --data-dir and --durability async or sync");
  }
  if (*max_memory_bytes != 0 && *max_memory_bytes < (1u << 20)) {
    return FlagError(sources, "max_memory", max_memory, "must be 0 or at least 1M");
  }
  durability.max_memory = *max_memory_bytes;
  if (absl::Status status =
          CheckRange(sources, "durability_flush_ms", durability.flush_interval_ms, 1, 60'000);
      !status.ok()) {
    return status;
  }

  Limits& limits = options.limits;
  limits.max_packet_size = absl::GetFlag(FLAGS_max_packet_size);
  limits.max_inflight =
      static_cast<uint16_t>(std::min<uint32_t>(absl::GetFlag(FLAGS_max_inflight), 65535));
  limits.max_queued_messages = absl::GetFlag(FLAGS_max_queued_messages);
  limits.max_queued_bytes = absl::GetFlag(FLAGS_max_queued_bytes);
  limits.queue_qos0_offline = absl::GetFlag(FLAGS_queue_qos0_offline);
  limits.max_outbound_bytes = absl::GetFlag(FLAGS_max_outbound_bytes);
  limits.max_subscriptions_per_client = absl::GetFlag(FLAGS_max_subscriptions_per_client);
  limits.max_topic_length = absl::GetFlag(FLAGS_max_topic_length);
  limits.max_topic_levels = absl::GetFlag(FLAGS_max_topic_levels);
  limits.connect_timeout_ms = absl::GetFlag(FLAGS_connect_timeout_ms);
  limits.denied_filters = absl::GetFlag(FLAGS_deny_subscribe);
  limits.topic_alias_maximum =
      static_cast<uint16_t>(std::min<uint32_t>(absl::GetFlag(FLAGS_topic_alias_maximum), 65535));
  limits.validate_utf8_payload = absl::GetFlag(FLAGS_validate_utf8_payload);
  limits.max_session_expiry = absl::GetFlag(FLAGS_max_session_expiry);
  limits.max_keepalive =
      static_cast<uint16_t>(std::min<uint32_t>(absl::GetFlag(FLAGS_max_keepalive), 65535));
  limits.receive_maximum =
      static_cast<uint16_t>(std::min<uint32_t>(absl::GetFlag(FLAGS_receive_maximum), 65535));
  limits.max_qos = static_cast<uint8_t>(std::min<uint32_t>(absl::GetFlag(FLAGS_max_qos), 2));
  limits.retain_available = absl::GetFlag(FLAGS_retain_available);
  limits.max_publish_rate = absl::GetFlag(FLAGS_max_publish_rate);
  limits.max_publish_bytes_rate = absl::GetFlag(FLAGS_max_publish_bytes_rate);
  for (absl::Status status : {
           CheckRange(sources, "max_packet_size", absl::GetFlag(FLAGS_max_packet_size), 64,
                      268435460),
           CheckRange(sources, "max_inflight", absl::GetFlag(FLAGS_max_inflight), 1, 65535),
           CheckRange(sources, "max_queued_messages", limits.max_queued_messages, 1, 1u << 30),
           CheckRange(sources, "max_queued_bytes", absl::GetFlag(FLAGS_max_queued_bytes), 1,
                      1ull << 40),
           CheckRange(sources, "max_outbound_bytes", absl::GetFlag(FLAGS_max_outbound_bytes), 1024,
                      1ull << 40),
           CheckRange(sources, "max_subscriptions_per_client", limits.max_subscriptions_per_client,
                      1, 1u << 30),
           CheckRange(sources, "max_topic_length", limits.max_topic_length, 1, 65535),
           CheckRange(sources, "max_topic_levels", limits.max_topic_levels, 1, 65535),
           CheckRange(sources, "connect_timeout_ms", limits.connect_timeout_ms, 100, 3'600'000),
           CheckRange(sources, "topic_alias_maximum", absl::GetFlag(FLAGS_topic_alias_maximum), 0,
                      65535),
           CheckRange(sources, "max_keepalive", absl::GetFlag(FLAGS_max_keepalive), 1, 65535),
           CheckRange(sources, "receive_maximum", absl::GetFlag(FLAGS_receive_maximum), 1, 65535),
           CheckRange(sources, "max_qos", absl::GetFlag(FLAGS_max_qos), 0, 2),
       }) {
    if (!status.ok()) return status;
  }
  if (limits.max_session_expiry == 0) {
    // 0 would silently turn every MQTT 5 persistent session into a clean one.
    return FlagError(sources, "max_session_expiry", "0", "must be at least 1");
  }

  std::string redirect = absl::GetFlag(FLAGS_redirect);
  std::string reference = absl::GetFlag(FLAGS_server_reference);
  if (redirect == "moved") {
    options.redirect.kind = ServerRedirect::Kind::kMoved;
  } else if (redirect == "use-another") {
    options.redirect.kind = ServerRedirect::Kind::kUseAnother;
  } else if (redirect != "none") {
    return FlagError(sources, "redirect", redirect, "must be none, moved or use-another");
  }
  if (options.redirect.kind != ServerRedirect::Kind::kNone && reference.empty()) {
    return FlagError(sources, "redirect", redirect, "needs --server-reference=HOST[:PORT]");
  }
  if (options.redirect.kind == ServerRedirect::Kind::kNone && !reference.empty()) {
    return FlagError(sources, "server_reference", reference, "has no effect without --redirect");
  }
  if (reference.find_first_of("\t\r\n") != std::string::npos) {
    return FlagError(sources, "server_reference", reference, "must not contain control characters");
  }
  options.redirect.server_reference = reference;
  options.response_information = absl::GetFlag(FLAGS_response_information);

  if (absl::Status status = ClusterOptions(sources, options.cluster); !status.ok()) return status;

  std::string secret = absl::GetFlag(FLAGS_auth_method_demo);
  if (!secret.empty()) {
    options.authenticator = std::make_shared<auth::ChallengeAuthenticator>(secret);
  }

  config.password_file = absl::GetFlag(FLAGS_password_file);
  config.acl_file = absl::GetFlag(FLAGS_acl_file);
  std::string anonymous = absl::GetFlag(FLAGS_allow_anonymous);
  if (anonymous == "auto") {
    // Open only where nobody else can connect and nobody asked for
    // passwords (Mosquitto 2.0 without a configuration does the same).
    if (!config.password_file.empty()) {
      config.allow_anonymous = false;
      config.anonymous_reason = "--password-file is given and no --allow-anonymous was given";
    } else if (!not_loopback.empty()) {
      config.allow_anonymous = false;
      config.anonymous_reason = absl::StrFormat(
          "listener %s is not loopback and no --allow-anonymous was given", not_loopback);
    } else {
      config.allow_anonymous = true;
      config.anonymous_reason = "every listener is loopback and no --password-file was given";
    }
  } else if (anonymous == "true" || anonymous == "1" || anonymous == "yes") {
    config.allow_anonymous = true;
    config.anonymous_reason = sources.contains("allow_anonymous")
                                  ? sources.find("allow_anonymous")->second + " = true"
                                  : "--allow-anonymous";
  } else if (anonymous == "false" || anonymous == "0" || anonymous == "no") {
    config.allow_anonymous = false;
    config.anonymous_reason = sources.contains("allow_anonymous")
                                  ? sources.find("allow_anonymous")->second + " = false"
                                  : "--allow-anonymous=false";
  } else {
    return FlagError(sources, "allow_anonymous", anonymous, "must be true, false or auto");
  }
  config.network_listener = !not_loopback.empty();

  config.sys_interval_s = absl::GetFlag(FLAGS_sys_interval);
  if (absl::Status status = CheckRange(sources, "sys_interval", config.sys_interval_s, 0, 86400);
      !status.ok()) {
    return status;
  }
  config.http_listen = absl::GetFlag(FLAGS_http_listen);
  config.http_token = absl::GetFlag(FLAGS_http_token);
  const std::string token_file = absl::GetFlag(FLAGS_http_token_file);
  if (!config.http_token.empty() && !token_file.empty()) {
    return FlagError(sources, "http_token_file", token_file,
                     "give --http-token or --http-token-file, not both");
  }
  if (!token_file.empty()) {
    std::ifstream in(token_file, std::ios::binary);
    if (!in) return FlagError(sources, "http_token_file", token_file, "cannot be read");
    std::ostringstream bytes;
    bytes << in.rdbuf();
    config.http_token = std::string(absl::StripAsciiWhitespace(bytes.str()));
    if (config.http_token.empty())
      return FlagError(sources, "http_token_file", token_file, "is empty");
  }
  if (config.http_listen.empty() && !config.http_token.empty()) {
    return FlagError(sources, token_file.empty() ? "http_token" : "http_token_file",
                     token_file.empty() ? "..." : token_file,
                     "has no effect without --http-listen");
  }
  if (!config.http_listen.empty()) {
    std::string_view address = config.http_listen;
    for (std::string_view scheme : {"https://", "http://"}) {
      if (address.substr(0, scheme.size()) == scheme) address.remove_prefix(scheme.size());
    }
    auto parsed = net::ParseListenAddress(address);
    if (!parsed.ok() || parsed->transport != net::Transport::kTcp ||
        address.find('?') != std::string_view::npos) {
      return FlagError(sources, "http_listen", config.http_listen,
                       parsed.ok() ? "give host:port (HTTP) or https://host:port"
                                   : std::string(parsed.status().message()));
    }
  }

  std::string level = absl::GetFlag(FLAGS_log_level);
  if (!base::ParseLogLevel(level, &config.log_level)) {
    return FlagError(sources, "log_level", level, "must be debug, info, warning or error");
  }
  for (std::string_view name : kFlagOrder) {
    config.flag_values.emplace_back(
        name,
        absl::FindCommandLineFlag(absl::string_view(name.data(), name.size()))->CurrentValue());
  }
  return config;
}

std::vector<std::string_view> ConfigurableFlags() {
  std::vector<std::string_view> flags;
  for (std::string_view name : kFlagOrder) {
    if (name != "config") flags.push_back(name);
  }
  return flags;
}

std::string HelpText() {
  std::string text =
      "shardmq: an MQTT 3.1/3.1.1/5.0 broker, thread-per-core on io_uring.\n\n"
      "Usage: shardmq [--config=FILE] [--flag=value ...]\n\nFlags:\n";
  for (std::string_view name : kFlagOrder) {
    absl::CommandLineFlag* flag =
        absl::FindCommandLineFlag(absl::string_view(name.data(), name.size()));
    if (flag == nullptr) continue;
    absl::StrAppendFormat(&text, "  --%s (default: %s)\n      %s\n", DashedName(name),
                          flag->DefaultValue(), flag->Help());
  }
  text +=
      "\nSIGINT/SIGTERM stop the broker gracefully; a second signal exits at once.\n"
      "SIGHUP reloads --password-file and --acl-file (a bad file keeps the old ones) and\n"
      "re-reads --config: --log-level, --password-file and --acl-file take effect, other\n"
      "changes are logged as needing a restart.\n";
  return text;
}

}  // namespace shardmq::daemon
