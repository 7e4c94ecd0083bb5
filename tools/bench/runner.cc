#include "runner.h"

#include <netdb.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <thread>

#include "absl/strings/str_format.h"
#include "proc_stats.h"
#include "worker.h"

namespace shardmq::bench {
namespace {

using Streams = absl::flat_hash_map<uint32_t, SeqTracker>;

std::string ClientPrefix(const Config& c) {
  return c.client_prefix.empty() ? absl::StrFormat("smqb%d-", getpid()) : c.client_prefix;
}
std::string TopicPrefix(const Config& c) {
  return c.topic_prefix.empty() ? absl::StrFormat("bench/%d", getpid()) : c.topic_prefix;
}

ClientSpec Pub(const Config& c, uint32_t i, std::string topic) {
  ClientSpec s;
  s.role = Role::kPublisher;
  s.index = i;
  s.client_id = IdOnShard(absl::StrFormat("%sp%d", ClientPrefix(c), i), c.pub_shard, c.home_shards);
  s.topic = std::move(topic);
  return s;
}
ClientSpec Sub(const Config& c, uint32_t i, std::string filter) {
  ClientSpec s;
  s.role = Role::kSubscriber;
  s.index = i;
  s.client_id = IdOnShard(absl::StrFormat("%ss%d", ClientPrefix(c), i), c.sub_shard, c.home_shards);
  s.filter = std::move(filter);
  return s;
}

// Which publishers subscriber `s` must hear from.
bool Expects(const Config& c, uint32_t sub, uint32_t pub) {
  switch (c.scenario) {
    case Scenario::kFanout:
      return sub % c.topics == pub % c.topics;
    case Scenario::kP2p:
      return sub == pub;
    default:
      return true;
  }
}

bool Resolve(const std::string& host, int port_number, sockaddr_storage* address,
             socklen_t* address_len, std::string* error) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port = absl::StrFormat("%d", port_number);
  const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    *error = absl::StrFormat("cannot resolve %s:%d: %s", host, port_number, gai_strerror(rc));
    return false;
  }
  std::memcpy(address, res->ai_addr, res->ai_addrlen);
  *address_len = res->ai_addrlen;
  freeaddrinfo(res);
  return true;
}

bool ResolveAddress(const Config& c, Shared* shared, std::string* error) {
  return Resolve(c.host, c.port, &shared->address, &shared->address_len, error) &&
         Resolve(c.sub_host.empty() ? c.host : c.sub_host, c.sub_port == 0 ? c.port : c.sub_port,
                 &shared->sub_address, &shared->sub_address_len, error);
}

// Polls `done` every millisecond until it holds, the run failed or the
// deadline passes. Returns whether `done` held.
bool WaitFor(const Shared& shared, uint64_t timeout_ns, const std::function<bool()>& done) {
  const uint64_t deadline = NowNs() + timeout_ns;
  while (!done()) {
    if (shared.failed.load(std::memory_order_acquire) || NowNs() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

void SleepUntil(const Shared& shared, uint64_t when_ns) {
  while (!shared.failed.load(std::memory_order_acquire)) {
    const uint64_t now = NowNs();
    if (now >= when_ns) return;
    std::this_thread::sleep_for(
        std::chrono::nanoseconds(std::min<uint64_t>(when_ns - now, 5'000'000)));
  }
}

}  // namespace

std::vector<ClientSpec> PlanClients(const Config& c) {
  std::vector<ClientSpec> out;
  const std::string tp = TopicPrefix(c);
  switch (c.scenario) {
    case Scenario::kFanout:
      for (int s = 0; s < c.subscribers; ++s) {
        out.push_back(Sub(c, s, absl::StrFormat("%s/fanout/%d", tp, s % c.topics)));
      }
      for (int p = 0; p < c.publishers; ++p) {
        out.push_back(Pub(c, p, absl::StrFormat("%s/fanout/%d", tp, p % c.topics)));
      }
      break;
    case Scenario::kFanin: {
      const std::string filter = absl::StrFormat("%s/fanin/+", tp);
      for (int s = 0; s < c.subscribers; ++s) {
        out.push_back(Sub(c, s, c.shared ? "$share/smqb/" + filter : filter));
      }
      for (int p = 0; p < c.publishers; ++p) {
        out.push_back(Pub(c, p, absl::StrFormat("%s/fanin/%d", tp, p)));
      }
      break;
    }
    case Scenario::kP2p:
      for (int i = 0; i < c.pairs; ++i) {
        out.push_back(Sub(c, i, absl::StrFormat("%s/p2p/%d", tp, i)));
        out.push_back(Pub(c, i, absl::StrFormat("%s/p2p/%d", tp, i)));
      }
      break;
    case Scenario::kRetained:
      out.push_back(Pub(c, 0, absl::StrFormat("%s/retained", tp)));
      out.back().retained = true;
      out.push_back(Sub(c, 0, absl::StrFormat("%s/retained/+", tp)));
      break;
    case Scenario::kConn:
      for (int i = 0; i < c.connections; ++i) {
        ClientSpec s;
        s.index = i;
        s.client_id = absl::StrFormat("%sc%d", ClientPrefix(c), i);
        out.push_back(std::move(s));
      }
      break;
  }
  return out;
}

Results RunScenario(const Config& config) {
  Results r;
  r.config = config;
  Shared shared(config);
  if (!ResolveAddress(config, &shared, &r.error)) {
    r.error_connecting = true;
    return r;
  }
  std::vector<ClientSpec> clients = PlanClients(config);
  for (const ClientSpec& s : clients) {
    if (s.role == Role::kPublisher) ++r.publishers;
    if (s.role == Role::kSubscriber) ++r.subscribers;
  }
  shared.sent_per_publisher.assign(r.publishers, 0);
  const int total = static_cast<int>(clients.size());

  // Round-robin over the threads, so each gets a mix of publishers and
  // subscribers and p2p pairs mostly cross threads.
  std::vector<std::vector<ClientSpec>> split(config.threads);
  for (size_t i = 0; i < clients.size(); ++i) {
    split[i % config.threads].push_back(std::move(clients[i]));
  }
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::thread> threads;
  for (auto& part : split) workers.push_back(std::make_unique<Worker>(&shared, std::move(part)));

  // conn: broker memory before any of our connections exist.
  uint64_t rss_idle = 0;
  std::optional<ProcSample> before_connect;
  if (config.broker_pid) {
    before_connect = SampleProcess(config.broker_pid);
    if (before_connect) rss_idle = before_connect->rss_bytes;
  }
  for (auto& w : workers) threads.emplace_back([&w] { w->Run(); });

  auto advance = [&](Phase p) { shared.phase.store(p, std::memory_order_release); };
  auto fail = [&](std::string why, bool connecting) { shared.Fail(std::move(why), connecting); };
  auto progress = [&](const char* what) {
    if (!config.progress) return;
    std::fprintf(stderr, "[%s] connected %d/%d, sent %llu, received %llu, in flight %lld\n", what,
                 shared.connected.load(), total, (unsigned long long)shared.sent.load(),
                 (unsigned long long)shared.received.load(), (long long)shared.inflight.load());
  };

  uint64_t connect_timeout = static_cast<uint64_t>(config.connect_timeout_ns);
  if (config.scenario == Scenario::kConn && config.conn_rate > 0) {
    connect_timeout += static_cast<uint64_t>(config.connections / config.conn_rate * 1e9);
  }
  const bool connected = WaitFor(shared, connect_timeout, [&] {
    return shared.connected.load(std::memory_order_acquire) == total;
  });
  if (!connected && !shared.failed.load()) {
    fail(absl::StrFormat("timed out: %d of %d connections to %s:%d got CONNACK in %.1f s",
                         shared.connected.load(), total, config.host, config.port,
                         connect_timeout / 1e9),
         true);
  }

  if (shared.failed.load()) {
    // Nothing to measure.
  } else if (config.scenario == Scenario::kConn) {
    r.connections = static_cast<uint64_t>(total);
    r.connect_s = (shared.last_connack_ns.load() - shared.first_connect_ns.load()) / 1e9;
    if (config.broker_pid) {
      const std::optional<ProcSample> connected_sample = SampleProcess(config.broker_pid);
      if (before_connect && connected_sample) {
        // schedstat (ns) when the kernel has it: utime+stime count 10 ms
        // ticks, coarse against ~10 us per connection.
        const bool precise = before_connect->sched_ns > 0 && connected_sample->sched_ns > 0;
        const uint64_t cpu_ns = precise ? connected_sample->sched_ns - before_connect->sched_ns
                                        : connected_sample->cpu_ns - before_connect->cpu_ns;
        r.broker_cpu_us_per_conn = static_cast<double>(cpu_ns) / 1e3 / total;
        if (r.broker_cpu_us_per_conn > 0) r.broker_conn_capacity = 1e6 / r.broker_cpu_us_per_conn;
      }
      // Let the broker finish its per-connection allocations.
      std::this_thread::sleep_for(std::chrono::seconds(1));
      const std::optional<ProcSample> after = SampleProcess(config.broker_pid);
      if (rss_idle && after) {
        r.broker_sampled = true;
        r.broker_rss_start = rss_idle;
        r.broker_rss_end = after->rss_bytes;
        r.broker_bytes_per_connection =
            (static_cast<double>(after->rss_bytes) - static_cast<double>(rss_idle)) / total;
      }
    }
  } else if (config.scenario == Scenario::kRetained) {
    advance(Phase::kRetainedPublish);
    const uint64_t limit = static_cast<uint64_t>(config.duration_ns + config.connect_timeout_ns);
    if (!WaitFor(shared, limit, [&] { return shared.retained_published.load(); }) &&
        !shared.failed.load()) {
      fail(absl::StrFormat("timed out publishing %d retained messages", config.retained), false);
    }
    advance(Phase::kSubscribe);
    WaitFor(shared, static_cast<uint64_t>(config.duration_ns),
            [&] { return shared.retained_done_ns.load() != 0; });
    // All arrived: time to the last one. Otherwise to the last that came.
    uint64_t done = shared.retained_done_ns.load();
    if (!done) done = shared.retained_last_ns.load();
    if (done) r.retained_ms = (done - shared.retained_subscribe_ns.load()) / 1e6;
    advance(Phase::kDrain);
    WaitFor(shared, 1'000'000'000, [&] {
      return shared.workers_stopped_publishing.load(std::memory_order_acquire) == config.threads;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // Let the clearing PUBLISHes go.
  } else {
    advance(Phase::kSubscribe);
    if (!WaitFor(shared, static_cast<uint64_t>(config.connect_timeout_ns),
                 [&] { return shared.subscribed.load() == static_cast<int>(r.subscribers); }) &&
        !shared.failed.load()) {
      fail(absl::StrFormat("timed out: %d of %d subscribers got SUBACK from %s:%d",
                           shared.subscribed.load(), r.subscribers, config.host, config.port),
           false);
    }
    if (!shared.failed.load() && config.settle_ns > 0) {
      std::this_thread::sleep_for(std::chrono::nanoseconds(config.settle_ns));
    }
    if (!shared.failed.load()) {
      shared.start_ns = NowNs() + 20'000'000;
      shared.measure_start_ns = shared.start_ns + static_cast<uint64_t>(config.warmup_ns);
      shared.measure_end_ns = shared.measure_start_ns + static_cast<uint64_t>(config.duration_ns);
      advance(Phase::kPublish);
      std::optional<ProcSample> before, after;
      uint64_t next_progress = shared.start_ns + 1'000'000'000;
      uint64_t last_sent = 0, last_received = 0;
      bool sampled_before = false;
      while (!shared.failed.load() && NowNs() < shared.measure_end_ns) {
        const uint64_t now = NowNs();
        if (!sampled_before && now >= shared.measure_start_ns) {
          sampled_before = true;
          if (config.broker_pid) before = SampleProcess(config.broker_pid);
        }
        if (now >= next_progress) {
          next_progress += 1'000'000'000;
          const uint64_t s = shared.sent.load(), rcv = shared.received.load();
          if (config.progress) {
            std::fprintf(
                stderr, "[%5.1f s] sent %9llu msg/s  received %9llu msg/s  in flight %lld\n",
                (now - shared.start_ns) / 1e9, (unsigned long long)(s - last_sent),
                (unsigned long long)(rcv - last_received), (long long)shared.inflight.load());
          }
          last_sent = s;
          last_received = rcv;
        }
        SleepUntil(shared, std::min(next_progress, sampled_before ? shared.measure_end_ns
                                                                  : shared.measure_start_ns));
      }
      if (config.broker_pid) after = SampleProcess(config.broker_pid);
      advance(Phase::kDrain);
      WaitFor(shared, 5'000'000'000, [&] {
        return shared.workers_stopped_publishing.load(std::memory_order_acquire) == config.threads;
      });
      for (uint32_t p = 0; p < r.publishers; ++p) {
        uint64_t fan = 0;
        for (uint32_t s = 0; s < r.subscribers; ++s) fan += Expects(config, s, p) ? 1 : 0;
        if (config.shared) fan = 1;
        r.expected_total += shared.sent_per_publisher[p] * fan;
      }
      // Drain: QoS >= 1 until every PUBLISH is acknowledged and delivered;
      // QoS 0 until deliveries stop for 500 ms (the rest is lost).
      uint64_t last = shared.received.load(), last_change = NowNs();
      WaitFor(shared, static_cast<uint64_t>(config.drain_ns), [&] {
        const uint64_t now = NowNs(), rcv = shared.received.load();
        if (rcv != last) {
          last = rcv;
          last_change = now;
        }
        if (rcv >= r.expected_total && shared.inflight.load() <= 0) return true;
        return config.qos == 0 && now - last_change > 500'000'000;
      });
      if (before && after) {
        r.broker_sampled = true;
        r.broker_rss_start = before->rss_bytes;
        r.broker_rss_end = after->rss_bytes;
        const double wall_ns = static_cast<double>(config.duration_ns);
        const double cpu_ns = static_cast<double>(after->cpu_ns - before->cpu_ns);
        r.broker_cpu_percent = 100.0 * cpu_ns / wall_ns;
        r.window_s = wall_ns / 1e9;
      }
    }
  }
  if (shared.failed.load()) progress("failed");
  advance(Phase::kStop);
  for (auto& t : threads) t.join();

  {
    std::lock_guard<std::mutex> lock(shared.error_mu);
    r.error = shared.first_error;
    r.error_connecting = shared.failed_connecting;
  }
  r.sent_total = shared.sent.load();
  r.received_total = shared.received.load();
  r.window_s = config.duration_ns / 1e9;
  for (auto& w : workers) {
    r.latency.Merge(w->latency());
    r.connect_latency.Merge(w->connect_latency());
    r.delivered_in_window += w->measured();
    r.sent_in_window += w->sent_in_window();
    r.foreign += w->foreign();
    r.pipelined_connects += w->pipelined_connects();
  }
  if (r.broker_sampled && r.delivered_in_window > 0 && config.scenario != Scenario::kConn) {
    r.broker_cpu_us_per_msg = r.broker_cpu_percent / 100.0 * r.window_s * 1e6 /
                              static_cast<double>(r.delivered_in_window);
  }
  if (config.scenario == Scenario::kConn) return r;

  // Integrity: every expected (publisher, subscriber) stream.
  std::vector<const Streams*> by_sub(r.subscribers, nullptr);
  for (auto& w : workers) {
    for (const auto& [index, streams] : w->Streams()) by_sub[index] = streams;
  }
  static const Streams kNone;
  static const SeqTracker kEmpty;
  for (uint32_t s = 0; s < r.subscribers; ++s) {
    const Streams& streams = by_sub[s] ? *by_sub[s] : kNone;
    for (const auto& [pub, t] : streams) {
      if (pub >= r.publishers || !Expects(config, s, pub)) r.foreign += t.received();
    }
  }
  if (config.scenario == Scenario::kRetained) {
    const Streams& streams = by_sub[0] ? *by_sub[0] : kNone;
    auto it = streams.find(0);
    const SeqTracker& t = it == streams.end() ? kEmpty : it->second;
    r.streams = 1;
    r.retained_received = t.unique();
    r.lost = t.Lost(shared.sent_per_publisher[0]);
    r.duplicated = t.duplicates();
    // Retained messages sit on different topics: the broker may send them in
    // any order, so order is not judged.
    return r;
  }
  for (uint32_t p = 0; p < r.publishers; ++p) {
    const uint64_t sent = shared.sent_per_publisher[p];
    SeqTracker group;  // $share: the group as a whole.
    for (uint32_t s = 0; s < r.subscribers; ++s) {
      if (!Expects(config, s, p)) continue;
      const Streams& streams = by_sub[s] ? *by_sub[s] : kNone;
      auto it = streams.find(p);
      const SeqTracker& t = it == streams.end() ? kEmpty : it->second;
      r.reordered += t.reordered();
      if (config.shared) {
        group.Merge(t);
        continue;
      }
      ++r.streams;
      r.lost += t.Lost(sent);
      r.duplicated += t.duplicates();
    }
    if (config.shared) {
      ++r.streams;
      r.lost += group.Lost(sent);
      r.duplicated += group.duplicates();
    }
  }
  return r;
}

}  // namespace shardmq::bench
