// shardmq::Broker: the public face over a ShardGroup of BrokerShards.
#include "shardmq/broker.h"

#include <arpa/inet.h>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "base/log.h"
#include "broker/broker_context.h"
#include "broker/broker_link.h"
#include "broker/broker_shard.h"
#include "net/listen_address.h"
#include "shard/shard_group.h"
#include "shard/tls_session.h"

namespace shardmq {

class Broker::Impl {
 public:
  explicit Impl(const Options& options) : options_(options) {}

  absl::Status Init() {
    if (options_.shards < 1) {
      return absl::InvalidArgumentError(
          absl::StrFormat("shards=%d: must be at least 1", options_.shards));
    }
    if (options_.limits.max_qos > 2) {
      return absl::InvalidArgumentError(
          absl::StrFormat("limits.max_qos=%d: must be 0, 1 or 2", options_.limits.max_qos));
    }
    if (options_.limits.max_keepalive == 0 || options_.limits.receive_maximum == 0) {
      return absl::InvalidArgumentError(
          "limits.max_keepalive and limits.receive_maximum must be at least 1");
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
    for (int i = 0; i < options_.shards; ++i) {
      context_.stats.push_back(std::make_unique<broker::ShardStats>());
    }
    group_options_.shard_count = options_.shards;
    group_options_.cpus = options_.cpu_affinity;
    group_options_.max_connections = options_.max_connections;
    group_options_.address_limits.max_per_address = options_.max_connections_per_address;
    group_options_.address_limits.connects_per_second = options_.max_connect_rate_per_address;
    group_options_.batch_wait = std::chrono::microseconds(options_.batch_wait_us);
    for (const std::string& text : options_.listeners) {
      auto parsed = net::ParseListenAddress(text);
      if (!parsed.ok()) {
        return absl::InvalidArgumentError(
            absl::StrFormat("listener %s", std::string(parsed.status().message())));
      }
      char host[INET6_ADDRSTRLEN] = {};
      uint16_t port = 0;
      if (parsed->address.ss_family == AF_INET) {
        const auto* v4 = reinterpret_cast<const sockaddr_in*>(&parsed->address);
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
        port = ntohs(v4->sin_port);
      } else {
        const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&parsed->address);
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
        port = ntohs(v6->sin6_port);
      }
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
      group_options_.listeners.push_back({host, port, std::move(tls), std::move(ws)});
    }
    return absl::OkStatus();
  }

  absl::Status Start() {
    auto group = shard::ShardGroup::Create(group_options_, [this](shard::Shard& shard) {
      return std::make_unique<broker::BrokerShard>(shard, context_);
    });
    if (!group.ok()) return group.status();
    group_ = *std::move(group);
    if (absl::Status started = group_->Start(); !started.ok()) return started;
    link_->Attach(group_.get());
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
                  "connections (%d over max, %d per address, %d connect rate), %d connect "
                  "timeouts, %d publishers throttled",
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
                      counters.rejected_per_address.load(std::memory_order_relaxed) +
                      counters.rejected_connect_rate.load(std::memory_order_relaxed),
                  counters.rejected_max_connections.load(std::memory_order_relaxed),
                  counters.rejected_per_address.load(std::memory_order_relaxed),
                  counters.rejected_connect_rate.load(std::memory_order_relaxed),
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
    auto get = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
    out.connections_open = static_cast<uint64_t>(std::max<int64_t>(0, group_->open_connections()));
    for (int i = 0; i < context_.shard_count; ++i) {
      const shard::ShardCounters& counters = group_->counters(i);
      const broker::ShardStats& stats = *context_.stats[i];
      out.connections_accepted += get(counters.accepted);
      out.refused_max_connections += get(counters.rejected_max_connections);
      out.refused_per_address += get(counters.rejected_per_address);
      out.refused_connect_rate += get(counters.rejected_connect_rate);
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
    }
    return out;
  }

 private:
  Options options_;
  shard::ShardGroup::Options group_options_;
  // One SSL_CTX shared (read-only) by every shard and TLS listener.
  std::shared_ptr<const shard::TlsContext> tls_context_;
  broker::BrokerContext context_;
  std::unique_ptr<shard::ShardGroup> group_;
  // Inline clients' way in; cut when the shards are joined.
  std::shared_ptr<broker::BrokerLink> link_ = std::make_shared<broker::BrokerLink>();
  std::atomic<bool> stopping_{false};
  bool waited_ = false;
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
void Broker::Close() { impl_->Close(); }
ShutdownReport Broker::Wait() { return impl_->Wait(); }

absl::Status Broker::Serve() {
  if (absl::Status status = Start(); !status.ok()) return status;
  Wait();
  return absl::OkStatus();
}

std::vector<std::string> Broker::BoundAddresses() const { return impl_->BoundAddresses(); }
BrokerStats Broker::Stats() const { return impl_->Stats(); }
int Broker::shard_count() const { return impl_->shard_count(); }

}  // namespace shardmq
