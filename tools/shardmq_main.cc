// The shardmq daemon: parses flags and the config file, starts a Broker, and
// turns SIGINT/SIGTERM into a graceful stop (a second signal exits at once)
// and SIGHUP into a reload of the config file and the password and ACL files.
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_join.h"
#include "auth/auth_config.h"
#include "base/log.h"
#include "config_reload.h"
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

// What SIGHUP works on; used only by the signal thread once the broker runs.
struct ReloadState {
  std::vector<std::string> args;  // the command line, to parse again with the file
  shardmq::daemon::DaemonConfig running;
  // The auth store, or null when the broker started without the auth hook.
  shardmq::auth::AuthConfigStore* auth_store = nullptr;
  std::string password_bytes;  // what the files held at the last load
  std::string acl_bytes;
};

// Reloads the auth files, from `paths` (new ones when the config file named
// new ones): all or nothing (auth/auth_config.h); a client already connected
// stays connected and meets the new ACL at its next check. Adds what changed
// to `changes`; false when the files did not load.
bool ReloadAuthFiles(ReloadState& state, const shardmq::auth::AuthPaths& paths,
                     std::vector<std::string>& changes) {
  std::shared_ptr<const shardmq::auth::AuthConfig> before = state.auth_store->snapshot().Load();
  if (absl::Status status = state.auth_store->Reload(paths); !status.ok()) {
    SHARDMQ_LOG(kError, "SIGHUP: reload failed, the previous files stay in force: %s",
                std::string(status.message()));
    return false;
  }
  std::shared_ptr<const shardmq::auth::AuthConfig> after = state.auth_store->snapshot().Load();
  std::string new_passwords = ReadAll(paths.password_file);
  std::string new_acl = ReadAll(paths.acl_file);
  if (!paths.password_file.empty()) {
    const size_t users_before = before->passwords != nullptr ? before->passwords->size() : 0;
    changes.push_back(new_passwords == state.password_bytes &&
                              paths.password_file == state.running.password_file
                          ? "password file unchanged"
                          : absl::StrFormat("password file changed: %d users (was %d)",
                                            after->passwords->size(), users_before));
  }
  if (!paths.acl_file.empty()) {
    changes.push_back(new_acl == state.acl_bytes && paths.acl_file == state.running.acl_file
                          ? "ACL file unchanged"
                          : "ACL file changed");
  }
  state.password_bytes = std::move(new_passwords);
  state.acl_bytes = std::move(new_acl);
  return true;
}

// SIGHUP: re-reads the config file (when there is one) and applies what can
// change while running (config_reload.h); reloads the auth files. A config
// file that does not parse, or limits the broker refuses, change nothing.
// `broker`: the running broker, null once it is stopping.
void Reload(ReloadState& state, shardmq::Broker* broker) {
  if (state.running.config_file.empty() && state.auth_store == nullptr) {
    SHARDMQ_LOG(kInfo, "SIGHUP: no --config, --password-file or --acl-file to reload");
    return;
  }
  std::vector<std::string> changes;
  shardmq::auth::AuthPaths paths{.password_file = state.running.password_file,
                                 .acl_file = state.running.acl_file};
  std::optional<shardmq::daemon::DaemonConfig> next;
  std::optional<shardmq::daemon::ReloadPlan> plan;
  if (!state.running.config_file.empty()) {
    std::vector<char*> argv;
    for (std::string& arg : state.args) argv.push_back(arg.data());
    absl::StatusOr<shardmq::daemon::DaemonConfig> parsed =
        shardmq::daemon::ParseDaemonFlags(static_cast<int>(argv.size()), argv.data());
    if (!parsed.ok()) {
      SHARDMQ_LOG(kError, "SIGHUP: %s not reloaded, nothing changed: %s", state.running.config_file,
                  std::string(parsed.status().message()));
      return;
    }
    next = *std::move(parsed);
    plan = shardmq::daemon::PlanReload(state.running, *next);
    // Limits first: if the broker refuses them, nothing else changes either.
    if (!plan->limit_keys.empty()) {
      absl::Status applied = broker == nullptr ? absl::UnavailableError("the broker is stopping")
                                               : shardmq::daemon::ApplyLimits(*plan, *broker);
      if (!applied.ok()) {
        SHARDMQ_LOG(kError, "SIGHUP: %s not reloaded, nothing changed: limits refused: %s",
                    state.running.config_file, std::string(applied.message()));
        return;
      }
      for (const std::string& key : plan->limit_keys) {
        shardmq::daemon::Adopt(*next, key, &state.running);
      }
    }
    for (const std::string& key : plan->needs_restart) {
      SHARDMQ_LOG(kWarning, "SIGHUP: %s changed in %s and needs a restart; the running value stays",
                  key, state.running.config_file);
    }
    if (plan->auth_paths.has_value()) {
      if (state.auth_store == nullptr) {
        // The hook is part of the broker's fixed hook list, chosen at start.
        SHARDMQ_LOG(kWarning,
                    "SIGHUP: password_file / acl_file changed in %s and need a restart: the "
                    "broker started without a password or ACL file",
                    state.running.config_file);
      } else {
        paths = *plan->auth_paths;
      }
    }
    if (plan->log_level.has_value()) {
      shardmq::base::SetLogLevel(*plan->log_level);
      shardmq::daemon::Adopt(*next, "log_level", &state.running);
    }
  }
  const bool auth_loaded = state.auth_store != nullptr && ReloadAuthFiles(state, paths, changes);
  if (auth_loaded && next.has_value()) {
    shardmq::daemon::Adopt(*next, "password_file", &state.running);
    shardmq::daemon::Adopt(*next, "acl_file", &state.running);
  }
  if (plan.has_value()) {
    // The new settings first, then what the files hold now; new paths that
    // were not applied are not news.
    std::vector<std::string> applied = plan->changes;
    if (plan->auth_paths.has_value() && !auth_loaded) {
      std::erase_if(applied, [](const std::string& change) {
        return change.starts_with("password_file") || change.starts_with("acl_file");
      });
    }
    applied.insert(applied.end(), changes.begin(), changes.end());
    changes = std::move(applied);
  }
  // A failed auth reload was logged as such; say "reloaded" only for what was.
  if (state.auth_store != nullptr && !auth_loaded && changes.empty()) return;
  SHARDMQ_LOG(kInfo, "SIGHUP: reloaded%s (%s); connections kept",
              state.running.config_file.empty() ? "" : " " + state.running.config_file,
              changes.empty() ? "nothing changed" : absl::StrJoin(changes, ", "));
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
    if (parsed.ok() && parsed->transport == shardmq::net::Transport::kUnix) {
      SHARDMQ_LOG(kInfo, "listener %s: accepting on every shard (one shared socket)", bound[i]);
      continue;
    }
    const bool tls = parsed.ok() && parsed->transport == shardmq::net::Transport::kTls;
    SHARDMQ_LOG(kInfo, "listener %s://%s: accepting on every shard (SO_REUSEPORT)%s",
                tls ? "tls" : "tcp", bound[i],
                tls ? (config->options.tls.require_client_cert ? ", client certificate required"
                       : !config->options.tls.ca_file.empty()  ? ", client certificate optional"
                                                               : "")
                    : "");
    if (parsed.ok() && parsed->proxy_protocol) {
      SHARDMQ_LOG(kInfo,
                  "listener %s: every connection must start with a PROXY protocol header (v1 or "
                  "v2); clients are known by the address in it",
                  bound[i]);
    }
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
    auto started =
        shardmq::AdminServer::Start(**broker, {.listen = config->http_listen,
                                               .token = config->http_token,
                                               .tls_cert_file = config->options.tls.cert_file,
                                               .tls_key_file = config->options.tls.key_file,
                                               .version = SHARDMQ_VERSION});
    if (!started.ok()) {
      std::fprintf(stderr, "shardmq: %s\n", std::string(started.status().message()).c_str());
      return 1;
    }
    admin_http = *std::move(started);
    SHARDMQ_LOG(kInfo, "admin HTTP on %s://%s (%s)", admin_http->tls() ? "https" : "http",
                admin_http->bound_address(),
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
  static ReloadState reload_state;
  reload_state.args.assign(argv, argv + argc);
  reload_state.running = *config;
  reload_state.auth_store = auth_store.get();
  reload_state.password_bytes = ReadAll(config->password_file);
  reload_state.acl_bytes = ReadAll(config->acl_file);
  std::thread([stop_signals] {
    int signal_number = 0;
    for (;;) {
      sigwait(&stop_signals, &signal_number);
      if (signal_number != SIGHUP) break;
      // Held while reloading: main clears `running` under it before the
      // broker is destroyed.
      std::lock_guard<std::mutex> lock(stop_target.mutex);
      Reload(reload_state, stop_target.running);
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
