#include "auth/acl_file.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "auth/text_file.h"
#include "topic/levels.h"

namespace shardmq::auth {
namespace {

absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Splits off the first blank-separated word of `text` (already trimmed).
std::string_view TakeWord(std::string_view& text) {
  size_t blank = text.find_first_of(" \t");
  std::string_view word = text.substr(0, blank);
  text = blank == std::string_view::npos ? std::string_view() : StripBlanks(text.substr(blank));
  return word;
}

// Why `filter` is not a valid MQTT topic filter, or empty when it is.
std::string FilterProblem(std::string_view filter) {
  if (filter.empty()) return "empty topic";
  std::string_view rest = filter;
  bool more = true;
  while (more) {
    std::string_view level = topic::NextLevel(rest, more);
    if (level.size() > 1 && level.find_first_of("+#") != std::string_view::npos) {
      return absl::StrFormat("wildcard inside level \"%s\"", level);
    }
    if (level == "#" && more) return "'#' is not the last level";
  }
  return {};
}

bool Unsafe(std::string_view value) { return value.find_first_of("+#/") != std::string_view::npos; }

std::string Substitute(std::string_view pattern, std::optional<std::string_view> username,
                       std::string_view client_id) {
  std::string out;
  out.reserve(pattern.size() + 16);
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '%' && i + 1 < pattern.size()) {
      if (pattern[i + 1] == 'u') {
        out.append(*username);  // Callers skip %u patterns without a username.
        ++i;
        continue;
      }
      if (pattern[i + 1] == 'c') {
        out.append(client_id);
        ++i;
        continue;
      }
    }
    out.push_back(pattern[i]);
  }
  return out;
}

// True when ACL filter `acl` covers every topic requested filter `req`
// can match (see the header). `req` is a valid filter.
bool Covers(std::string_view acl, std::string_view req) {
  if (!req.empty() && req.front() == '$' && !acl.empty() &&
      (acl.front() == '+' || acl.front() == '#')) {
    return false;
  }
  bool acl_more = true;
  bool req_more = true;
  while (acl_more && req_more) {
    std::string_view a = topic::NextLevel(acl, acl_more);
    std::string_view r = topic::NextLevel(req, req_more);
    if (a == "#") return true;
    if (a == "+") {
      if (r == "#") return false;
      continue;
    }
    if (a != r) return false;
  }
  if (!acl_more && !req_more) return true;
  // The request ran out first: only a trailing "#" in the ACL covers that.
  return !req_more && acl == "#";
}

bool Matches(std::string_view acl, std::string_view target, bool filter) {
  if (filter && topic::HasWildcard(target)) return Covers(acl, target);
  return topic::FilterMatches(acl, target);
}

}  // namespace

absl::StatusOr<AclFile> AclFile::Load(std::string_view path) {
  absl::StatusOr<std::string> contents = ReadTextFile(path);
  if (!contents.ok()) return contents.status();
  return Parse(*contents, path);
}

absl::StatusOr<AclFile> AclFile::Parse(std::string_view contents, std::string_view name) {
  AclFile file;
  std::vector<Entry>* section = &file.anonymous_;
  LimitSection* limits = &file.global_limits_;
  absl::Status status = ForEachLine(contents, [&](int line_no, std::string_view line) {
    std::string_view rest = StripBlanks(line);
    if (rest.empty() || rest.front() == '#') return absl::OkStatus();
    auto error = [&](std::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s:%d: %s in \"%s\"", name, line_no, why, line));
    };
    std::string_view keyword = TakeWord(rest);
    if (keyword == "user") {
      if (rest.empty()) return error("missing user name");
      section = &file.users_[Absl(rest)];
      limits = &file.user_limits_[Absl(rest)];
      return absl::OkStatus();
    }
    if (keyword == "limit") {
      absl::Status s = ParseLimitLine(rest, *limits);
      return s.ok() ? s : error(std::string_view(s.message().data(), s.message().size()));
    }
    if (keyword != "topic" && keyword != "pattern") {
      return error(
          absl::StrFormat("unknown keyword \"%s\" (want topic, user, pattern or limit)", keyword));
    }
    Entry entry;
    std::string_view after_access = rest;
    std::string_view word = TakeWord(after_access);
    bool has_access = true;
    if (word == "read") {
      entry.access = kRead;
    } else if (word == "write") {
      entry.access = kWrite;
    } else if (word == "readwrite") {
      entry.access = kReadWrite;
    } else if (word == "deny") {
      entry.deny = true;
    } else {
      has_access = false;
    }
    if (has_access) rest = after_access;
    if (rest.empty()) return error("missing topic");
    entry.filter = std::string(rest);
    if (keyword == "pattern") {
      entry.uses_username = rest.find("%u") != std::string_view::npos;
      entry.uses_client_id = rest.find("%c") != std::string_view::npos;
      // Validate with a harmless stand-in for the substitutions.
      std::string problem = FilterProblem(Substitute(rest, "u", "c"));
      if (!problem.empty()) return error(problem);
      file.patterns_use_username_ |= entry.uses_username;
      file.patterns_use_client_id_ |= entry.uses_client_id;
      file.patterns_.push_back(std::move(entry));
    } else {
      std::string problem = FilterProblem(rest);
      if (!problem.empty()) return error(problem);
      section->push_back(std::move(entry));
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return file;
}

bool AclFile::Check(std::optional<std::string_view> username, std::string_view client_id,
                    std::string_view target, Kind kind, uint8_t access) const {
  if (patterns_use_username_ && username.has_value() && Unsafe(*username)) return false;
  if (patterns_use_client_id_ && Unsafe(client_id)) return false;
  const bool filter = kind == Kind::kFilter;

  const std::vector<Entry>* topics = &anonymous_;
  if (username.has_value()) {
    auto it = users_.find(Absl(*username));
    topics = it == users_.end() ? nullptr : &it->second;
  }
  // Patterns after substitution; those with %u are skipped without a username.
  std::vector<std::pair<std::string, const Entry*>> expanded;
  expanded.reserve(patterns_.size());
  for (const Entry& p : patterns_) {
    if (p.uses_username && !username.has_value()) continue;
    expanded.emplace_back(
        p.uses_username || p.uses_client_id ? Substitute(p.filter, username, client_id) : p.filter,
        &p);
  }

  // Deny wins.
  if (topics != nullptr) {
    for (const Entry& e : *topics) {
      if (e.deny && Matches(e.filter, target, filter)) return false;
    }
  }
  for (const auto& [f, e] : expanded) {
    if (e->deny && Matches(f, target, filter)) return false;
  }
  if (topics != nullptr) {
    for (const Entry& e : *topics) {
      if (!e.deny && (e.access & access) != 0 && Matches(e.filter, target, filter)) return true;
    }
  }
  for (const auto& [f, e] : expanded) {
    if (!e->deny && (e->access & access) != 0 && Matches(f, target, filter)) return true;
  }
  return false;
}

bool AclFile::MayPublish(std::optional<std::string_view> username, std::string_view client_id,
                         std::string_view topic) const {
  if (topic == "$SYS" || topic.starts_with("$SYS/")) return false;
  return Check(username, client_id, topic, Kind::kTopicName, kWrite);
}

bool AclFile::MaySubscribe(std::optional<std::string_view> username, std::string_view client_id,
                           std::string_view filter) const {
  if (topic::IsSharedSubscription(filter)) {
    std::optional<topic::SharedSubscription> shared = topic::ParseSharedSubscription(filter);
    if (!shared.has_value()) return false;
    filter = shared->filter;
  }
  return Check(username, client_id, filter, Kind::kFilter, kRead);
}

UserLimits AclFile::LimitsFor(std::optional<std::string_view> username) const {
  const LimitSection* user = nullptr;
  if (username.has_value()) {
    auto it = user_limits_.find(Absl(*username));
    if (it != user_limits_.end()) user = &it->second;
  }
  return ResolveLimits(global_limits_, user);
}

bool AclFile::MayReceive(std::optional<std::string_view> username, std::string_view client_id,
                         std::string_view topic) const {
  return Check(username, client_id, topic, Kind::kTopicName, kRead);
}

}  // namespace shardmq::auth
