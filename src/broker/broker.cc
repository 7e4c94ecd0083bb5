// shardmq::Broker: the public face over a ShardGroup of BrokerShards.
#include "shardmq/broker.h"

#include <arpa/inet.h>

#include <chrono>
#include <memory>
#include <mutex>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/log.h"
#include "broker/broker_context.h"
#include "broker/broker_link.h"
#include "broker/broker_shard.h"
#include "broker/client_id.h"
#include "broker/cluster_bridge.h"
#include "broker/retained_recovery.h"
#include "broker/shard_query.h"
#include "broker/store_rewrite.h"
#include "cluster/amqp_link.h"
#include "cluster/redis_link.h"
#include "mqtt/topic_validation.h"
#include "net/listen_address.h"
#include "net/unix_owner.h"
#include "shard/shard_group.h"
#include "shard/tls_session.h"
#include "store/data_dir_lock.h"
#include "store/data_dir_rewrite.h"
#include "topic/levels.h"

namespace shardmq {

namespace {

// What Create and SetLimits refuse: values the broker could not advertise
// in CONNACK (Maximum QoS, Server Keep Alive, Receive Maximum).
absl::Status CheckLimits(const Limits& limits) {
  if (limits.max_qos > 2) {
    return absl::InvalidArgumentError(
        absl::StrFormat("limits.max_qos=%d: must be 0, 1 or 2", limits.max_qos));
  }
  if (limits.max_keepalive == 0 || limits.receive_maximum == 0) {
    return absl::InvalidArgumentError(
        "limits.max_keepalive and limits.receive_maximum must be at least 1");
  }
  return absl::OkStatus();
}

absl::Status CheckConnectionLimits(const ConnectionLimits& limits) {
  if (limits.max_connections == 0) {
    return absl::InvalidArgumentError("max_connections=0: must be at least 1");
  }
  return absl::OkStatus();
}

ConnectionLimits ConnectionLimitsOf(const Options& options) {
  return {options.max_connections, options.max_connections_per_address,
          options.max_connect_rate_per_address};
}

// How long SetLimits waits for the shards to take new limits.
constexpr absl::Duration kApplyLimitsTimeout = absl::Seconds(5);

}  // namespace

class Broker::Impl {
 public:
  explicit Impl(const Options& options) : options_(options) {}

  absl::Status Init() {
    if (options_.shards < 1) {
      return absl::InvalidArgumentError(
          absl::StrFormat("shards=%d: must be at least 1", options_.shards));
    }
    if (absl::Status status = CheckLimits(options_.limits); !status.ok()) return status;
    if (absl::Status status = CheckConnectionLimits(ConnectionLimitsOf(options_)); !status.ok()) {
      return status;
    }
    if (options_.tls.identity_as_username && options_.tls.ca_file.empty()) {
      // Without a CA no certificate is asked for, so every TLS client would
      // be refused.
      return absl::InvalidArgumentError("tls.identity_as_username needs tls.ca_file");
    }
    context_.shard_count = options_.shards;
    context_.tls_identity_as_username = options_.tls.identity_as_username;
    context_.limits = options_.limits;
    context_.redirect = options_.redirect;
    context_.response_information = options_.response_information;
    context_.authenticator = options_.authenticator;
    for (const std::shared_ptr<Hooks>& hooks : options_.hooks) context_.hooks.Add(hooks);
    context_.link = link_;
    if (options_.cluster.enabled()) {
      if (absl::Status status = CreateClusterLink(); !status.ok()) return status;
    }
    for (int i = 0; i < options_.shards; ++i) {
      context_.stats.push_back(std::make_unique<broker::ShardStats>());
    }
    group_options_.shard_count = options_.shards;
    group_options_.cpus = options_.cpu_affinity;
    group_options_.max_connections = options_.max_connections;
    group_options_.address_limits.max_per_address = options_.max_connections_per_address;
    group_options_.address_limits.connects_per_second = options_.max_connect_rate_per_address;
    group_options_.batch_wait = std::chrono::microseconds(options_.batch_wait_us);
    group_options_.proxy_header_timeout =
        std::chrono::milliseconds(options_.limits.connect_timeout_ms);
    for (const std::string& text : options_.listeners) {
      auto parsed = net::ParseListenAddress(text);
      if (!parsed.ok()) {
        return absl::InvalidArgumentError(
            absl::StrFormat("listener %s", std::string(parsed.status().message())));
      }
      if (parsed->transport == net::Transport::kUnix) {
        absl::StatusOr<shard::ShardGroup::ListenAddress> unix_listener = UnixListener(*parsed);
        if (!unix_listener.ok()) return unix_listener.status();
        group_options_.listeners.push_back(*std::move(unix_listener));
        continue;
      }
      auto [host, port] = net::NumericHostPort(*parsed);
      std::shared_ptr<const shard::TlsContext> tls;
      if (net::UsesTls(parsed->transport)) {
        if (tls_context_ == nullptr) {
          auto ctx = shard::TlsContext::CreateServer({options_.tls.cert_file, options_.tls.key_file,
                                                      options_.tls.ca_file,
                                                      options_.tls.require_client_cert});
          if (!ctx.ok()) {
            return absl::InvalidArgumentError(
                absl::StrFormat("listener %s: %s", text, std::string(ctx.status().message())));
          }
          tls_context_ = *std::move(ctx);
        }
        tls = tls_context_;
      }
      std::shared_ptr<const shard::WsConfig> ws;
      if (parsed->transport == net::Transport::kWs || parsed->transport == net::Transport::kWss) {
        auto config = std::make_shared<shard::WsConfig>();
        config->path = parsed->path;
        ws = std::move(config);
      }
      group_options_.listeners.push_back({.host = host,
                                          .port = port,
                                          .tls = std::move(tls),
                                          .ws = std::move(ws),
                                          .max_connections = parsed->max_connections,
                                          .proxy_protocol = parsed->proxy_protocol});
    }
    return absl::OkStatus();
  }

  // A unix:// listener for the shard group, its owner looked up now so that
  // an unknown user or group stops Create() rather than Start().
  static absl::StatusOr<shard::ShardGroup::ListenAddress> UnixListener(
      const net::ListenAddress& parsed) {
    absl::StatusOr<net::UnixOwner> owner =
        net::ResolveUnixOwner(parsed.unix_owner, parsed.unix_group);
    if (!owner.ok()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "listener \"%s\": owner: %s", parsed.original, std::string(owner.status().message())));
    }
    shard::ShardGroup::ListenAddress listener;
    listener.unix_path = parsed.path;
    listener.unix_mode = parsed.unix_mode ? static_cast<int>(*parsed.unix_mode) : -1;
    listener.unix_uid = owner->uid;
    listener.unix_gid = owner->gid;
    listener.max_connections = parsed.max_connections;
    listener.proxy_protocol = parsed.proxy_protocol;
    return listener;
  }

  // Options::durability: recovers every shard directory under data_dir (the
  // retained set, each log's next sequence) and opens each shard's log
  // writer, before any shard thread runs. Damage stops start-up here.
  absl::Status OpenStore() {
    const Options::Durability& durability = options_.durability;
    if (!durability.enabled()) return absl::OkStatus();
    const auto began = std::chrono::steady_clock::now();
    // Before reading anything: another broker on the same directory would
    // be appending to the same logs.
    absl::StatusOr<std::unique_ptr<store::DataDirLock>> lock =
        store::DataDirLock::Acquire(durability.data_dir);
    if (!lock.ok()) return lock.status();
    data_dir_lock_ = *std::move(lock);
    // A rewrite that a crash interrupted is finished (or undone) first.
    absl::StatusOr<std::string> finished = store::FinishInterruptedRewrite(durability.data_dir);
    if (!finished.ok()) return finished.status();
    if (!finished->empty()) SHARDMQ_LOG(kWarning, "store: %s", *finished);
    const int64_t wall = broker::WallNowNs();
    const uint64_t spill_budget = durability.max_memory / static_cast<uint64_t>(options_.shards);
    absl::StatusOr<broker::StoreRecovery> recovered = broker::RecoverStore(
        durability.data_dir, options_.shards, wall, durability.salvage, spill_budget);
    if (!recovered.ok()) {
      return absl::Status(recovered.status().code(),
                          absl::StrFormat("durable state in %s: %s", durability.data_dir,
                                          recovered.status().message()));
    }
    for (const std::string& note : recovered->notes) SHARDMQ_LOG(kWarning, "store: %s", note);
    if (recovered->misplaced || recovered->salvaged) {
      // State must move to the directories of its new owners (the shard
      // count changed), or be written again without the damage salvage
      // skipped: rewrite the directory from what was recovered, then read
      // it back as any start would.
      if (absl::Status rewritten =
              broker::RewriteStore(durability.data_dir, options_.shards, *recovered, wall);
          !rewritten.ok()) {
        return absl::Status(rewritten.code(),
                            absl::StrFormat("durable state in %s: rewriting it: %s",
                                            durability.data_dir, rewritten.message()));
      }
      SHARDMQ_LOG(
          kInfo, "store: rewrote %s for %d shards (%s): %d sessions, %d retained messages",
          durability.data_dir, options_.shards,
          recovered->salvaged ? "without the damage salvage skipped" : "the shard count changed",
          recovered->sessions.size(), recovered->retained.size());
      recovered =
          broker::RecoverStore(durability.data_dir, options_.shards, wall, false, spill_budget);
      if (!recovered.ok()) {
        return absl::Status(recovered.status().code(),
                            absl::StrFormat("durable state in %s after rewriting it: %s",
                                            durability.data_dir, recovered.status().message()));
      }
    }
    context_.recovered_retained =
        broker::RetainedMessages(recovered->retained, wall, shard::Clock::now());
    context_.retained_stamp_floor = recovered->newest_stamp_ns;
    DistributeSessions(*recovered);
    const bool sync = durability.mode == Options::Durability::Mode::kSync;
    context_.durability_sync = sync;
    context_.durability_flush_ns = int64_t{durability.flush_interval_ms} * 1'000'000;
    context_.compaction_bytes = durability.compaction_bytes;
    context_.spill_budget = spill_budget;
    context_.store.resize(static_cast<size_t>(options_.shards));
    for (int i = 0; i < options_.shards; ++i) {
      broker::BrokerContext::ShardStore& slot = context_.store[static_cast<size_t>(i)];
      slot.io = std::make_unique<broker::ShardFileIo>();
      store::LogWriter::Options log_options;
      log_options.directory = absl::StrFormat("%s/shard-%d", durability.data_dir, i);
      log_options.shard = static_cast<uint32_t>(i);
      log_options.sync = sync;
      log_options.sync_interval_ns = context_.durability_flush_ns;
      log_options.bytes_since_snapshot = recovered->bytes_since_snapshot[static_cast<size_t>(i)];
      log_options.last_snapshot_bytes = recovered->last_snapshot_bytes[static_cast<size_t>(i)];
      absl::StatusOr<std::unique_ptr<store::LogWriter>> writer = store::LogWriter::Open(
          log_options, recovered->next_sequence[static_cast<size_t>(i)], *slot.io);
      if (!writer.ok()) return writer.status();
      slot.writer = *std::move(writer);
    }
    size_t sessions = 0;
    size_t items = 0;
    for (const auto& shard_sessions : context_.recovered_sessions) {
      sessions += shard_sessions.size();
      for (const broker::RecoveredSession& session : shard_sessions) items += session.items.size();
    }
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - began).count();
    SHARDMQ_LOG(
        kInfo,
        "store: %s, durability %s: %d retained messages and %d sessions (%d messages "
        "queued or in flight) recovered from %d records (%d bytes in %d shard directories) in "
        "%.1f ms; dropped as expired: %d retained, %d sessions, %d queued messages; %d copies "
        "of QoS 2 messages their publisher had not committed dropped",
        durability.data_dir,
        sync ? "sync"
             : absl::StrFormat("async (fdatasync every %d ms)", durability.flush_interval_ms),
        context_.recovered_retained.size(), sessions, items, recovered->records, recovered->bytes,
        recovered->directories, ms, recovered->expired, recovered->sessions_expired,
        recovered->messages_expired, recovered->uncommitted);
    return absl::OkStatus();
  }

  // The recovered sessions to their home shards (for this shard count), and
  // what every shard must know of the others' before serving: their filters
  // for the interest maps, their shared groups' members.
  void DistributeSessions(broker::StoreRecovery& recovered) {
    const int shards = options_.shards;
    context_.recovered_sessions.assign(static_cast<size_t>(shards), {});
    context_.recovered_interest.clear();
    context_.recovered_shared_members.clear();
    absl::flat_hash_map<std::string, std::vector<uint32_t>> shared;
    absl::flat_hash_set<std::pair<std::string, int>> interest;
    for (broker::RecoveredSession& session : recovered.sessions) {
      const int home = broker::HomeShard(session.client_id, shards);
      for (const auto& [filter, options] : session.subscriptions) {
        if (mqtt::IsSharedSubscription(filter)) {
          std::vector<uint32_t>& members = shared[filter];
          members.resize(static_cast<size_t>(shards), 0);
          ++members[static_cast<size_t>(home)];
        }
        interest.emplace(filter, home);
      }
      context_.recovered_sessions[static_cast<size_t>(home)].push_back(std::move(session));
    }
    recovered.sessions.clear();
    context_.recovered_interest.assign(interest.begin(), interest.end());
    context_.recovered_shared_members.assign(shared.begin(), shared.end());
    context_.next_log_number = recovered.next_number;
  }

  // Options::cluster: the link to RabbitMQ. Consumed messages go to a shard
  // through the same BrokerLink inline clients use.
  absl::Status CreateClusterLink() {
    cluster::AmqpLinkOptions link_options;
    link_options.url = options_.cluster.amqp_url;
    link_options.node_id = options_.cluster.node_id;
    link_options.exchange = options_.cluster.exchange;
    link_options.max_buffered = options_.cluster.buffer_messages;
    auto created = cluster::AmqpLink::Create(
        std::move(link_options), [link = link_, shards = options_.shards](
                                     std::string_view body, const cluster::SharedSource* shared) {
          return broker::PostFromCluster(*link, shards, body, shared);
        });
    if (!created.ok()) return created.status();
    cluster_ = *std::move(created);
    context_.cluster = cluster_.get();
    context_.client_id_prefix = absl::StrCat("smq-", options_.cluster.node_id, "-");
    if (options_.cluster.shared_state()) return CreateRedisLink();
    return absl::OkStatus();
  }

  // Options::Cluster::redis_url. The link's answers go to the client id's
  // home shard.
  absl::Status CreateRedisLink() {
    if (!options_.durability.data_dir.empty()) {
      return absl::InvalidArgumentError(
          "cluster.redis_url cannot be combined with durability.data_dir: sessions and "
          "retained messages live in Redis");
    }
    cluster::RedisLinkOptions link_options;
    link_options.url = options_.cluster.redis_url;
    link_options.node_id = options_.cluster.node_id;
    link_options.lease = std::chrono::milliseconds(options_.cluster.lease_ms);
    link_options.max_buffered = options_.cluster.buffer_messages;
    const int shards = options_.shards;
    cluster::RedisLink::Events events;
    events.claimed = [link = link_, shards](cluster::ClaimResult result) {
      const int home = broker::HomeShard(result.client_id, shards);
      link->Post(home, [result = std::move(result)](shard::ShardHandler& handler) mutable {
        static_cast<broker::BrokerShard&>(handler).FinishClaim(std::move(result));
      });
    };
    events.takeover_requested = [link = link_, shards](std::string client_id, std::string by_node,
                                                       uint64_t token) {
      const int home = broker::HomeShard(client_id, shards);
      link->Post(home, [client_id = std::move(client_id), by_node = std::move(by_node),
                        token](shard::ShardHandler& handler) {
        static_cast<broker::BrokerShard&>(handler).ReleaseForTakeover(client_id, by_node, token);
      });
    };
    events.adopted = [link = link_, shards](std::string client_id, cluster::SessionState state) {
      const int home = broker::HomeShard(client_id, shards);
      link->Post(home, [client_id = std::move(client_id),
                        state = std::move(state)](shard::ShardHandler& handler) mutable {
        static_cast<broker::BrokerShard&>(handler).AdoptSession(client_id, std::move(state));
      });
    };
    auto created = cluster::RedisLink::Create(std::move(link_options), std::move(events));
    if (!created.ok()) return created.status();
    redis_ = *std::move(created);
    context_.redis = redis_.get();
    return absl::OkStatus();
  }

  // The cluster's retained set, read from Redis before anything is served,
  // so that this node answers a SUBSCRIBE as the others do.
  void LoadClusterRetained() {
    auto loaded = redis_->LoadRetained(std::chrono::seconds(5));
    if (!loaded.ok()) {
      SHARDMQ_LOG(kWarning,
                  "cluster: could not read the retained messages from Redis (%s); this node "
                  "starts with none and gets new ones from the other nodes",
                  loaded.status().message());
      return;
    }
    const int64_t wall = broker::WallNowNs();
    const shard::Clock::time_point now = shard::Clock::now();
    size_t bad = 0;
    for (const auto& [topic, body] : *loaded) {
      absl::StatusOr<broker::MessageRef> message = broker::DecodeClusterMessage(body, wall, now);
      if (!message.ok()) {
        ++bad;
        continue;
      }
      if (*message) context_.recovered_retained.push_back(*std::move(message));
    }
    SHARDMQ_LOG(kInfo, "cluster: %d retained messages from Redis%s",
                context_.recovered_retained.size(),
                bad == 0 ? "" : absl::StrFormat(" (%d unreadable, skipped)", bad));
  }

  absl::Status Start() {
    if (absl::Status opened = OpenStore(); !opened.ok()) return opened;
    if (redis_ != nullptr) LoadClusterRetained();
    if (cluster_ != nullptr) {
      // Recovered persistent sessions' filters: one 0->1 per shard that has
      // them, as the shards themselves announce new ones.
      // A shared group's: its shared queue (cluster_bridge.cc).
      for (const auto& [filter, home] : context_.recovered_interest) {
        if (auto shared = topic::ParseSharedSubscription(filter)) {
          cluster_->SharedAdded(shared->group, shared->filter);
        } else {
          cluster_->FilterAdded(filter);
        }
      }
    }
    {
      // A SetLimits from another thread waits until the shards can be asked.
      std::lock_guard<std::mutex> lock(limits_mutex_);
      auto group = shard::ShardGroup::Create(group_options_, [this](shard::Shard& shard) {
        return std::make_unique<broker::BrokerShard>(shard, context_);
      });
      if (!group.ok()) return group.status();
      group_ = *std::move(group);
      if (absl::Status started = group_->Start(); !started.ok()) return started;
      // Every shard's constructor (run before Start returns) took its copy.
      context_.recovered_retained.clear();
      context_.recovered_sessions.clear();
      context_.recovered_interest.clear();
      context_.recovered_shared_members.clear();
      link_->Attach(group_.get());
    }
    if (cluster_ != nullptr) cluster_->Start();
    if (redis_ != nullptr) redis_->Start();
    if (context_.hooks.wants(kHookBroker)) context_.hooks.BrokerStarted();
    return absl::OkStatus();
  }

  absl::Status AddHook(std::shared_ptr<Hooks> hooks) {
    if (group_ != nullptr) {
      return absl::FailedPreconditionError("AddHook: hooks are fixed once the broker started");
    }
    context_.hooks.Add(std::move(hooks));
    return absl::OkStatus();
  }

  absl::Status SetLimits(const Limits& limits) {
    if (absl::Status status = CheckLimits(limits); !status.ok()) return status;
    if (broker::OnShardThread()) {
      // Checked before anything changes: the shards are asked and waited for.
      return absl::FailedPreconditionError("SetLimits: not from a shard thread (a hook)");
    }
    // Held while the shards apply, so that two callers' limits reach every
    // shard in the same order.
    std::lock_guard<std::mutex> lock(limits_mutex_);
    options_.limits = limits;
    if (group_ == nullptr) {
      // No shard thread yet: they start with these.
      context_.limits = limits;
      return absl::OkStatus();
    }
    // One copy for every shard; each takes its own on its own thread, so no
    // shard ever reads limits another thread writes.
    auto shared = std::make_shared<const Limits>(limits);
    absl::StatusOr<std::vector<bool>> applied = broker::QueryShards<bool>(
        *link_, AllShards(), kApplyLimitsTimeout, [shared](broker::BrokerShard& shard) {
          shard.ApplyLimits(*shared);
          return true;
        });
    return applied.status();
  }

  Limits limits() const {
    std::lock_guard<std::mutex> lock(limits_mutex_);
    return options_.limits;
  }

  absl::Status SetConnectionLimits(const ConnectionLimits& limits) {
    if (absl::Status status = CheckConnectionLimits(limits); !status.ok()) return status;
    std::lock_guard<std::mutex> lock(limits_mutex_);
    options_.max_connections = limits.max_connections;
    options_.max_connections_per_address = limits.max_connections_per_address;
    options_.max_connect_rate_per_address = limits.max_connect_rate_per_address;
    group_options_.max_connections = limits.max_connections;
    group_options_.address_limits = {limits.max_connections_per_address,
                                     limits.max_connect_rate_per_address};
    // Atomics in the group (shard/shard_group.h): safe while shards accept.
    if (group_ != nullptr) {
      group_->SetConnectionLimits(group_options_.max_connections, group_options_.address_limits);
    }
    return absl::OkStatus();
  }

  ConnectionLimits connection_limits() const {
    std::lock_guard<std::mutex> lock(limits_mutex_);
    return ConnectionLimitsOf(options_);
  }

  absl::StatusOr<std::unique_ptr<InlineClient>> NewInlineClient(std::string client_id) {
    return broker::NewInlineClient(link_, std::move(client_id), options_.shards);
  }

  void Close() {
    if (group_ == nullptr) return;
    if (!stopping_.exchange(true) && context_.hooks.wants(kHookBroker)) {
      context_.hooks.BrokerStopping();
    }
    group_->Stop();
  }

  ShutdownReport Wait() {
    ShutdownReport report;
    if (group_ == nullptr || waited_) return report;
    waited_ = true;
    shard::ShutdownReport shards = group_->Join();
    link_->Attach(nullptr);
    // After the shards: nothing publishes or changes interest any more.
    if (cluster_ != nullptr) cluster_->Stop();
    if (redis_ != nullptr) redis_->Stop();
    report.connections_closed = shards.connections_flushed + shards.connections_aborted;
    for (int i = 0; i < context_.shard_count; ++i) {
      const shard::ShardCounters& counters = group_->counters(i);
      const broker::ShardStats& stats = *context_.stats[i];
      report.disconnects_sent += stats.shutdown_disconnects.load(std::memory_order_relaxed);
      SHARDMQ_LOG(kInfo,
                  "shard %d: accepted %d connections (%d handed in, %d handed out), "
                  "%d CONNECTs, %d messages in, %d out; dropped %d QoS 0 to slow "
                  "subscribers, %d at full queues; %d publisher pauses, %d takeovers, "
                  "%d keep-alive timeouts, %d protocol errors, %d wills; refused %d "
                  "connections (%d over max, %d over a listener's max, %d per address, %d "
                  "connect rate, %d PROXY header), %d connect timeouts, %d publishers "
                  "throttled",
                  i, counters.accepted.load(std::memory_order_relaxed),
                  counters.handoffs_in.load(std::memory_order_relaxed),
                  counters.handoffs_out.load(std::memory_order_relaxed),
                  stats.connects.load(std::memory_order_relaxed),
                  stats.messages_received.load(std::memory_order_relaxed),
                  stats.messages_sent.load(std::memory_order_relaxed),
                  stats.dropped_qos0_slow.load(std::memory_order_relaxed),
                  stats.dropped_queue_full.load(std::memory_order_relaxed),
                  stats.publisher_pauses.load(std::memory_order_relaxed),
                  stats.takeovers.load(std::memory_order_relaxed),
                  stats.keepalive_timeouts.load(std::memory_order_relaxed),
                  stats.protocol_errors.load(std::memory_order_relaxed),
                  stats.wills_published.load(std::memory_order_relaxed),
                  counters.rejected_max_connections.load(std::memory_order_relaxed) +
                      counters.rejected_listener_max_connections.load(std::memory_order_relaxed) +
                      counters.rejected_per_address.load(std::memory_order_relaxed) +
                      counters.rejected_connect_rate.load(std::memory_order_relaxed) +
                      counters.rejected_proxy_header.load(std::memory_order_relaxed),
                  counters.rejected_max_connections.load(std::memory_order_relaxed),
                  counters.rejected_listener_max_connections.load(std::memory_order_relaxed),
                  counters.rejected_per_address.load(std::memory_order_relaxed),
                  counters.rejected_connect_rate.load(std::memory_order_relaxed),
                  counters.rejected_proxy_header.load(std::memory_order_relaxed),
                  stats.connect_timeouts.load(std::memory_order_relaxed),
                  stats.publishers_throttled.load(std::memory_order_relaxed));
    }
    return report;
  }

  std::vector<std::string> BoundAddresses() const {
    return group_ != nullptr ? group_->BoundAddresses() : std::vector<std::string>();
  }

  int shard_count() const { return options_.shards; }

  BrokerStats Stats() const {
    BrokerStats out;
    if (group_ == nullptr) return out;
    for (int i = 0; i < context_.shard_count; ++i) AddShard(i, out);
    out.connections_open = static_cast<uint64_t>(std::max<int64_t>(0, group_->open_connections()));
    return out;
  }

  ClusterStats cluster_stats() const {
    ClusterStats out;
    if (cluster_ == nullptr) return out;
    const cluster::AmqpLinkStats s = cluster_->Stats();
    out.enabled = true;
    out.connected = s.connected;
    out.published = s.published;
    out.consumed = s.consumed;
    out.shared_consumed = s.shared_consumed;
    out.shared_queues = s.shared_queues;
    out.own_skipped = s.own_skipped;
    out.dropped_qos0 = s.dropped_qos0;
    out.dropped_qos12 = s.dropped_qos12;
    out.reconnects = s.reconnects;
    out.bindings = s.bindings;
    out.buffered = s.buffered;
    for (const auto& stats : context_.stats) {
      out.publisher_pauses += stats->cluster_pauses.load(std::memory_order_relaxed);
    }
    if (redis_ != nullptr) {
      const cluster::RedisLinkStats r = redis_->Stats();
      out.redis_enabled = true;
      out.redis_connected = r.connected;
      out.redis_claims = r.claims;
      out.redis_takeovers_sent = r.takeovers_sent;
      out.redis_takeovers_received = r.takeovers_received;
      out.redis_takeover_timeouts = r.takeover_timeouts;
      out.redis_adopted = r.adopted;
      out.redis_dropped = r.dropped_pushes;
      out.redis_reconnects = r.reconnects;
      out.redis_buffered = r.buffered;
    }
    return out;
  }

  std::vector<BrokerStats> StatsPerShard() const {
    std::vector<BrokerStats> out(group_ == nullptr ? 0 : context_.shard_count);
    for (size_t i = 0; i < out.size(); ++i) {
      AddShard(static_cast<int>(i), out[i]);
      // Per shard: accepted and handed in, minus closed and handed out.
      const shard::ShardCounters& c = group_->counters(static_cast<int>(i));
      auto get = [](const std::atomic<uint64_t>& v) { return v.load(std::memory_order_relaxed); };
      const int64_t open = static_cast<int64_t>(get(c.accepted) + get(c.handoffs_in)) -
                           static_cast<int64_t>(get(c.closed) + get(c.handoffs_out));
      out[i].connections_open = static_cast<uint64_t>(std::max<int64_t>(0, open));
    }
    return out;
  }

  absl::StatusOr<std::vector<ShardGauges>> Gauges(absl::Duration timeout) const {
    return broker::QueryShards<ShardGauges>(*link_, AllShards(), timeout,
                                            [](broker::BrokerShard& s) { return s.Gauges(); });
  }

  absl::StatusOr<std::vector<ClientView>> Clients(absl::Duration timeout,
                                                  std::string_view client_id) const {
    std::vector<int> shards = AllShards();
    if (!client_id.empty()) shards = {broker::HomeShard(client_id, options_.shards)};
    auto answers = broker::QueryShards<std::vector<ClientView>>(
        *link_, shards, timeout,
        [id = std::string(client_id)](broker::BrokerShard& s) { return s.Clients(id); });
    if (!answers.ok()) return answers.status();
    std::vector<ClientView> out;
    for (std::vector<ClientView>& part : *answers) {
      for (ClientView& view : part) out.push_back(std::move(view));
    }
    if (!client_id.empty() && out.empty()) {
      return absl::NotFoundError(absl::StrFormat("no session for client id \"%s\"", client_id));
    }
    return out;
  }

  absl::StatusOr<std::vector<RetainedView>> Retained(std::string_view filter,
                                                     absl::Duration timeout) const {
    // Every shard holds the whole retained set: ask one.
    auto answers = broker::QueryShards<std::vector<RetainedView>>(
        *link_, {0}, timeout,
        [f = std::string(filter)](broker::BrokerShard& s) { return s.Retained(f); });
    if (!answers.ok()) return answers.status();
    return std::move(answers->front());
  }

  absl::Status DisconnectClient(std::string_view client_id, bool discard_session,
                                absl::Duration timeout) {
    auto answers = broker::QueryShards<absl::Status>(
        *link_, {broker::HomeShard(client_id, options_.shards)}, timeout,
        [id = std::string(client_id), discard_session](broker::BrokerShard& s) {
          return s.AdminDisconnect(id, discard_session);
        });
    if (!answers.ok()) return answers.status();
    return answers->front();
  }

 private:
  std::vector<int> AllShards() const {
    std::vector<int> shards(options_.shards);
    for (int i = 0; i < options_.shards; ++i) shards[i] = i;
    return shards;
  }

  // Adds shard i's counters into `out` (relaxed reads, one field at a time).
  void AddShard(int i, BrokerStats& out) const {
    auto get = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
    const shard::ShardCounters& counters = group_->counters(i);
    const broker::ShardStats& stats = *context_.stats[i];
    out.connections_accepted += get(counters.accepted);
    out.refused_max_connections += get(counters.rejected_max_connections);
    out.refused_listener_max_connections += get(counters.rejected_listener_max_connections);
    out.refused_per_address += get(counters.rejected_per_address);
    out.refused_connect_rate += get(counters.rejected_connect_rate);
    out.refused_proxy_header += get(counters.rejected_proxy_header);
    out.connects += get(stats.connects);
    out.auth_failures += get(stats.auth_failures);
    out.connect_timeouts += get(stats.connect_timeouts);
    out.keepalive_timeouts += get(stats.keepalive_timeouts);
    out.protocol_errors += get(stats.protocol_errors);
    out.publishers_throttled += get(stats.publishers_throttled);
    out.publishers_disconnected += get(stats.publishers_disconnected);
    out.subscriptions_refused_quota += get(stats.subscriptions_refused_quota);
    out.messages_received += get(stats.messages_received);
    out.messages_sent += get(stats.messages_sent);
    out.dropped_queue_full += get(stats.dropped_queue_full);
    out.dropped_qos0_slow += get(stats.dropped_qos0_slow);
    out.dropped_no_subscribers += get(stats.dropped_no_subscribers);
    out.dropped_expired += get(stats.dropped_expired);
    out.dropped_too_large += get(stats.dropped_too_large);
    for (int q = 0; q < 3; ++q) {
      out.messages_received_qos[q] += get(stats.received_by_qos[q]);
      out.messages_sent_qos[q] += get(stats.sent_by_qos[q]);
      out.publish_bytes_received_qos[q] += get(stats.received_bytes_by_qos[q]);
      out.publish_bytes_sent_qos[q] += get(stats.sent_bytes_by_qos[q]);
    }
    out.bytes_received += get(counters.bytes_received);
    out.bytes_sent += get(counters.bytes_sent);
    out.connections_closed += get(counters.closed);
    out.handoffs += get(counters.handoffs_out);
    out.takeovers += get(stats.takeovers);
    out.wills_published += get(stats.wills_published);
    out.sessions_expired += get(stats.sessions_expired);
    out.store_records += get(stats.store_records);
    out.store_snapshots += get(stats.store_snapshots);
    out.store_spilled += get(stats.store_spilled);
    out.store_spill_reads += get(stats.store_spill_reads);
    out.store_spill_failures += get(stats.store_spill_failures);
    out.tls_failures += get(counters.tls_failures);
    out.mail_pushed += get(counters.mail_pushed);
    out.mail_full += get(counters.mail_full);
    out.mail_received += get(counters.mail_received);
    out.wakeups_sent += get(counters.wakeups_sent);
    out.wakeups_skipped += get(counters.wakeups_skipped);
    out.loop_turns += get(counters.loop_turns);
    out.sleeps += get(counters.sleeps);
    const int64_t now =
        std::chrono::duration_cast<std::chrono::nanoseconds>(shard::Clock::now().time_since_epoch())
            .count();
    // Finished sleeps, then the one in progress (read in this order, a
    // wake-up in between only hides that sleep until the next read).
    uint64_t sleep_ns = get(counters.sleep_ns);
    const int64_t since = counters.sleeping_since_ns.load(std::memory_order_relaxed);
    if (since > 0 && now > since) sleep_ns += static_cast<uint64_t>(now - since);
    const int64_t started = counters.loop_started_ns.load(std::memory_order_relaxed);
    const uint64_t lived = started > 0 && now > started ? static_cast<uint64_t>(now - started) : 0;
    out.sleep_ns += sleep_ns;
    out.busy_ns += lived > sleep_ns ? lived - sleep_ns : 0;
  }

  Options options_;
  shard::ShardGroup::Options group_options_;
  // One SSL_CTX shared (read-only) by every shard and TLS listener.
  std::shared_ptr<const shard::TlsContext> tls_context_;
  // Held while the broker lives (declared before the logs it protects, so
  // released after them).
  std::unique_ptr<store::DataDirLock> data_dir_lock_;
  broker::BrokerContext context_;
  std::unique_ptr<shard::ShardGroup> group_;
  // Inline clients' way in; cut when the shards are joined.
  std::shared_ptr<broker::BrokerLink> link_ = std::make_shared<broker::BrokerLink>();
  // Options::cluster (context_.cluster points at it): started once the
  // shards serve, stopped in Wait() once they have stopped.
  std::unique_ptr<cluster::AmqpLink> cluster_;
  // Options::Cluster::redis_url (context_.redis points at it), the same way.
  std::unique_ptr<cluster::RedisLink> redis_;
  std::atomic<bool> stopping_{false};
  bool waited_ = false;
  // Orders SetLimits / SetConnectionLimits callers and guards the limits in
  // options_ that they change.
  mutable std::mutex limits_mutex_;
};

absl::StatusOr<std::unique_ptr<Broker>> Broker::Create(const Options& options) {
  auto impl = std::make_unique<Impl>(options);
  if (absl::Status status = impl->Init(); !status.ok()) return status;
  return std::unique_ptr<Broker>(new Broker(std::move(impl)));
}

Broker::Broker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Broker::~Broker() {
  impl_->Close();
  impl_->Wait();
}

absl::Status Broker::Start() { return impl_->Start(); }
absl::Status Broker::AddHook(std::shared_ptr<Hooks> hooks) {
  return impl_->AddHook(std::move(hooks));
}
absl::StatusOr<std::unique_ptr<InlineClient>> Broker::NewInlineClient(std::string client_id) {
  return impl_->NewInlineClient(std::move(client_id));
}
absl::Status Broker::SetLimits(const Limits& limits) { return impl_->SetLimits(limits); }
Limits Broker::limits() const { return impl_->limits(); }
absl::Status Broker::SetConnectionLimits(const ConnectionLimits& limits) {
  return impl_->SetConnectionLimits(limits);
}
ConnectionLimits Broker::connection_limits() const { return impl_->connection_limits(); }
void Broker::Close() { impl_->Close(); }
ShutdownReport Broker::Wait() { return impl_->Wait(); }

absl::Status Broker::Serve() {
  if (absl::Status status = Start(); !status.ok()) return status;
  Wait();
  return absl::OkStatus();
}

std::vector<std::string> Broker::BoundAddresses() const { return impl_->BoundAddresses(); }
BrokerStats Broker::Stats() const { return impl_->Stats(); }
std::vector<BrokerStats> Broker::StatsPerShard() const { return impl_->StatsPerShard(); }
ClusterStats Broker::cluster_stats() const { return impl_->cluster_stats(); }
absl::StatusOr<std::vector<ShardGauges>> Broker::Gauges(absl::Duration timeout) const {
  return impl_->Gauges(timeout);
}
absl::StatusOr<std::vector<ClientView>> Broker::Clients(absl::Duration timeout,
                                                        std::string_view client_id) const {
  return impl_->Clients(timeout, client_id);
}
absl::StatusOr<std::vector<RetainedView>> Broker::Retained(std::string_view filter,
                                                           absl::Duration timeout) const {
  return impl_->Retained(filter, timeout);
}
absl::Status Broker::DisconnectClient(std::string_view client_id, bool discard_session,
                                      absl::Duration timeout) {
  return impl_->DisconnectClient(client_id, discard_session, timeout);
}
int Broker::shard_count() const { return impl_->shard_count(); }

}  // namespace shardmq
