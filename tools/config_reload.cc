#include "config_reload.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace shardmq::daemon {
namespace {

// The keys a reload applies; every other changed key needs a restart.
constexpr std::string_view kLiveKeys[] = {"log_level", "password_file", "acl_file"};

const std::string* FlagValue(const DaemonConfig& config, std::string_view key) {
  for (const auto& [name, value] : config.flag_values) {
    if (name == key) return &value;
  }
  return nullptr;
}

std::string Text(const DaemonConfig& config, std::string_view key) {
  const std::string* value = FlagValue(config, key);
  return value == nullptr ? "" : *value;
}

std::string Shown(const std::string& path) { return path.empty() ? "(none)" : path; }

}  // namespace

ReloadPlan PlanReload(const DaemonConfig& running, const DaemonConfig& next) {
  ReloadPlan plan;
  for (const auto& [key, value] : next.flag_values) {
    const std::string* before = FlagValue(running, key);
    if (before == nullptr || *before == value) continue;
    if (std::find(std::begin(kLiveKeys), std::end(kLiveKeys), key) == std::end(kLiveKeys)) {
      plan.needs_restart.push_back(key);
    }
  }
  // allow_anonymous = "auto" decides from the listeners and the password
  // file; the hook was built with the decision, so a new one waits too.
  if (running.allow_anonymous != next.allow_anonymous &&
      std::find(plan.needs_restart.begin(), plan.needs_restart.end(), "allow_anonymous") ==
          plan.needs_restart.end()) {
    plan.needs_restart.push_back("allow_anonymous");
  }
  if (running.log_level != next.log_level) {
    plan.log_level = next.log_level;
    plan.changes.push_back(
        absl::StrFormat("log_level %s -> %s", Text(running, "log_level"), Text(next, "log_level")));
  }
  if (running.password_file != next.password_file || running.acl_file != next.acl_file) {
    plan.auth_paths =
        auth::AuthPaths{.password_file = next.password_file, .acl_file = next.acl_file};
    if (running.password_file != next.password_file) {
      plan.changes.push_back(absl::StrFormat("password_file %s -> %s", Shown(running.password_file),
                                             Shown(next.password_file)));
    }
    if (running.acl_file != next.acl_file) {
      plan.changes.push_back(
          absl::StrFormat("acl_file %s -> %s", Shown(running.acl_file), Shown(next.acl_file)));
    }
  }
  return plan;
}

void Adopt(const DaemonConfig& next, std::string_view key, DaemonConfig* running) {
  if (key == "log_level") running->log_level = next.log_level;
  if (key == "password_file") running->password_file = next.password_file;
  if (key == "acl_file") running->acl_file = next.acl_file;
  const std::string* value = FlagValue(next, key);
  for (auto& [name, old] : running->flag_values) {
    if (name == key && value != nullptr) old = *value;
  }
}

}  // namespace shardmq::daemon
