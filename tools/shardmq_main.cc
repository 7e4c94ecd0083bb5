// The shardmq daemon: parses flags, starts a Broker, and turns SIGINT/SIGTERM
// into a graceful stop (a second signal exits at once).
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>
#include <thread>

#include "absl/strings/str_join.h"
#include "base/log.h"
#include "daemon_flags.h"
#include "net/listen_address.h"
#include "shardmq/broker.h"

namespace {

// Many connections need many descriptors: take the hard limit.
void RaiseDescriptorLimit() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

int main(int argc, char** argv) {
  auto config = shardmq::daemon::ParseDaemonFlags(argc, argv);
  if (!config.ok()) {
    std::fprintf(stderr, "shardmq: %s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  if (config->help) {
    std::fputs(shardmq::daemon::HelpText().c_str(), stdout);
    return 0;
  }
  if (config->version) {
    std::puts("shardmq " SHARDMQ_VERSION);
    return 0;
  }
  shardmq::base::SetLogLevel(config->log_level);
  RaiseDescriptorLimit();

  // Block the stop signals in every thread (shards inherit this mask) so that
  // only the waiter thread below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto broker = shardmq::Broker::Create(config->options);
  if (!broker.ok()) {
    std::fprintf(stderr, "shardmq: %s\n", std::string(broker.status().message()).c_str());
    return 1;
  }
  if (absl::Status started = (*broker)->Start(); !started.ok()) {
    std::fprintf(stderr, "shardmq: cannot start: %s\n", std::string(started.message()).c_str());
    return 1;
  }
  // BoundAddresses() has one entry per configured listener, in order.
  const std::vector<std::string> bound = (*broker)->BoundAddresses();
  for (size_t i = 0; i < bound.size(); ++i) {
    auto parsed = shardmq::net::ParseListenAddress(config->options.listeners[i]);
    const bool tls = parsed.ok() && parsed->transport == shardmq::net::Transport::kTls;
    SHARDMQ_LOG(kInfo, "listener %s://%s: accepting on every shard (SO_REUSEPORT)%s",
                tls ? "tls" : "tcp", bound[i],
                tls ? (config->options.tls.require_client_cert ? ", client certificate required"
                       : !config->options.tls.ca_file.empty()  ? ", client certificate optional"
                                                               : "")
                    : "");
  }
  SHARDMQ_LOG(kInfo, "shardmq %s started: %d shards, listening on %s", SHARDMQ_VERSION,
              (*broker)->shard_count(), absl::StrJoin((*broker)->BoundAddresses(), ", "));

  // The waiter thread outlives main's use of the broker (it is detached, as
  // it may be blocked in sigwait for ever): `running` is cleared under the
  // mutex before the broker is destroyed, so a late signal never touches it.
  struct StopTarget {
    std::mutex mutex;
    shardmq::Broker* running = nullptr;
  };
  static StopTarget stop_target;
  stop_target.running = broker->get();
  std::thread([stop_signals] {
    int signal_number = 0;
    sigwait(&stop_signals, &signal_number);
    SHARDMQ_LOG(kInfo, "received %s, stopping (send it again to exit at once)",
                signal_number == SIGINT ? "SIGINT" : "SIGTERM");
    {
      std::lock_guard<std::mutex> lock(stop_target.mutex);
      if (stop_target.running != nullptr) stop_target.running->Close();
    }
    sigwait(&stop_signals, &signal_number);
    SHARDMQ_LOG(kWarning, "second signal: exiting without a graceful stop");
    _exit(1);
  }).detach();

  shardmq::ShutdownReport report = (*broker)->Wait();
  {
    std::lock_guard<std::mutex> lock(stop_target.mutex);
    stop_target.running = nullptr;
  }
  SHARDMQ_LOG(kInfo, "stopped: closed %d connections, sent %d MQTT 5 shutdown DISCONNECTs",
              report.connections_closed, report.disconnects_sent);
  return 0;
}
