// The shardmq daemon: parses flags, starts a Broker, and turns SIGINT/SIGTERM
// into a graceful stop (a second signal exits at once) and SIGHUP into a
// reload of the password and ACL files.
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "absl/strings/str_join.h"
#include "auth/auth_config.h"
#include "base/log.h"
#include "daemon_flags.h"
#include "file_auth_hooks.h"
#include "net/listen_address.h"
#include "shardmq/admin.h"
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

// What a file holds now, to tell the operator whether a reload changed it.
std::string ReadAll(const std::string& path) {
  if (path.empty()) return {};
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

std::string Describe(const shardmq::daemon::DaemonConfig& config,
                     const shardmq::auth::AuthConfig* files) {
  std::string text;
  if (files != nullptr && files->passwords != nullptr) {
    text += absl::StrFormat("password file %s (%d users)", config.password_file,
                            files->passwords->size());
  } else {
    text += "no password file";
  }
  text += files != nullptr && files->acl != nullptr ? ", ACL file " + config.acl_file
                                                    : ", no ACL file (every topic allowed)";
  text += config.allow_anonymous ? ", anonymous clients ALLOWED" : ", anonymous clients refused";
  return text;
}

// Reloads on SIGHUP: all or nothing (auth/auth_config.h); a client already
// connected stays connected and meets the new ACL at its next check.
void Reload(shardmq::auth::AuthConfigStore& store, const shardmq::daemon::DaemonConfig& config,
            std::string& password_bytes, std::string& acl_bytes) {
  std::shared_ptr<const shardmq::auth::AuthConfig> before = store.snapshot().Load();
  if (absl::Status status = store.Reload(); !status.ok()) {
    SHARDMQ_LOG(kError, "SIGHUP: reload failed, the previous files stay in force: %s",
                std::string(status.message()));
    return;
  }
  std::shared_ptr<const shardmq::auth::AuthConfig> after = store.snapshot().Load();
  std::string new_passwords = ReadAll(config.password_file);
  std::string new_acl = ReadAll(config.acl_file);
  std::vector<std::string> changes;
  if (!config.password_file.empty()) {
    changes.push_back(new_passwords == password_bytes
                          ? "password file unchanged"
                          : absl::StrFormat("password file changed: %d users (was %d)",
                                            after->passwords->size(), before->passwords->size()));
  }
  if (!config.acl_file.empty()) {
    changes.push_back(new_acl == acl_bytes ? "ACL file unchanged" : "ACL file changed");
  }
  password_bytes = std::move(new_passwords);
  acl_bytes = std::move(new_acl);
  SHARDMQ_LOG(kInfo, "SIGHUP: reloaded (%s); connections kept", absl::StrJoin(changes, ", "));
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
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Built-in authentication: a hook like any embedder's. The store outlives
  // the broker and the signal thread (it is never freed: a late SIGHUP must
  // find it).
  static std::unique_ptr<shardmq::auth::AuthConfigStore> auth_store;
  if (!config->password_file.empty() || !config->acl_file.empty() || !config->allow_anonymous) {
    auto store = shardmq::auth::AuthConfigStore::Create(
        {.password_file = config->password_file, .acl_file = config->acl_file});
    if (!store.ok()) {
      std::fprintf(stderr, "shardmq: %s\n", std::string(store.status().message()).c_str());
      return 1;
    }
    auth_store = *std::move(store);
    config->options.hooks.insert(config->options.hooks.begin(),
                                 std::make_shared<shardmq::daemon::FileAuthHooks>(
                                     *auth_store, config->allow_anonymous, config->options.shards));
  }
  SHARDMQ_LOG(kInfo, "authentication: %s",
              Describe(*config, auth_store ? auth_store->snapshot().Load().get() : nullptr));
  SHARDMQ_LOG(kInfo, "anonymous clients %s: %s", config->allow_anonymous ? "allowed" : "refused",
              config->anonymous_reason);
  if (config->allow_anonymous && config->network_listener && auth_store == nullptr) {
    SHARDMQ_LOG(kWarning,
                "anyone who can reach a listener may connect and use every topic: give "
                "--password-file (anonymous access then defaults to off) or "
                "--allow-anonymous=false");
  }

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
  // Operator views: threads of their own, destroyed before the broker.
  std::unique_ptr<shardmq::SysTopicPublisher> sys_topics;
  if (config->sys_interval_s > 0) {
    auto started = shardmq::SysTopicPublisher::Start(
        **broker, {.interval = absl::Seconds(config->sys_interval_s), .version = SHARDMQ_VERSION});
    if (!started.ok()) {
      std::fprintf(stderr, "shardmq: $SYS topics: %s\n",
                   std::string(started.status().message()).c_str());
      return 1;
    }
    sys_topics = *std::move(started);
    SHARDMQ_LOG(kInfo, "$SYS topics every %d s", config->sys_interval_s);
  }
  std::unique_ptr<shardmq::AdminServer> admin_http;
  if (!config->http_listen.empty()) {
    auto started = shardmq::AdminServer::Start(
        **broker,
        {.listen = config->http_listen, .token = config->http_token, .version = SHARDMQ_VERSION});
    if (!started.ok()) {
      std::fprintf(stderr, "shardmq: %s\n", std::string(started.status().message()).c_str());
      return 1;
    }
    admin_http = *std::move(started);
    SHARDMQ_LOG(kInfo, "admin HTTP on http://%s (%s)", admin_http->bound_address(),
                config->http_token.empty() ? "no token: loopback only" : "bearer token required");
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
  static const shardmq::daemon::DaemonConfig daemon_config = *config;
  std::thread([stop_signals] {
    int signal_number = 0;
    std::string password_bytes = ReadAll(daemon_config.password_file);
    std::string acl_bytes = ReadAll(daemon_config.acl_file);
    for (;;) {
      sigwait(&stop_signals, &signal_number);
      if (signal_number != SIGHUP) break;
      if (auth_store == nullptr) {
        SHARDMQ_LOG(kInfo, "SIGHUP: no --password-file or --acl-file to reload");
        continue;
      }
      Reload(*auth_store, daemon_config, password_bytes, acl_bytes);
    }
    SHARDMQ_LOG(kInfo, "received %s, stopping (send it again to exit at once)",
                signal_number == SIGINT ? "SIGINT" : "SIGTERM");
    {
      std::lock_guard<std::mutex> lock(stop_target.mutex);
      if (stop_target.running != nullptr) stop_target.running->Close();
    }
    do {
      sigwait(&stop_signals, &signal_number);
    } while (signal_number == SIGHUP);  // too late to reload, not a reason to exit
    SHARDMQ_LOG(kWarning, "second signal: exiting without a graceful stop");
    _exit(1);
  }).detach();

  shardmq::ShutdownReport report = (*broker)->Wait();
  admin_http.reset();
  sys_topics.reset();
  {
    std::lock_guard<std::mutex> lock(stop_target.mutex);
    stop_target.running = nullptr;
  }
  SHARDMQ_LOG(kInfo, "stopped: closed %d connections, sent %d MQTT 5 shutdown DISCONNECTs",
              report.connections_closed, report.disconnects_sent);
  return 0;
}
