#include "auth/acl_limits.h"

#include <charconv>
#include <limits>

#include "absl/strings/str_format.h"
#include "auth/text_file.h"

namespace shardmq::auth {
namespace {

constexpr char kNames[] =
    "max_qos, shared_subscriptions, max_subscriptions, publish_rate or max_connections";

// A count: 1..2^32-1 or "unlimited". Zero is refused because every limit
// that could mean "none at all" has a clearer spelling elsewhere (no topic
// grants, no password entry), and a 0 written by mistake would lock users out.
absl::StatusOr<std::optional<uint32_t>> ParseCount(std::string_view name, std::string_view value) {
  if (value == "unlimited") return std::optional<uint32_t>();
  uint64_t n = 0;
  auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (value.empty() || ec != std::errc() || ptr != value.data() + value.size() || n < 1 ||
      n > std::numeric_limits<uint32_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("limit %s wants a number from 1 to %d or \"unlimited\", not \"%s\"", name,
                        std::numeric_limits<uint32_t>::max(), value));
  }
  return std::optional<uint32_t>(static_cast<uint32_t>(n));
}

template <typename T>
absl::Status Store(std::string_view name, LimitSection::Setting<T>& setting,
                   std::optional<T> value) {
  if (setting.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("limit %s is already set in this section", name));
  }
  setting = value;
  return absl::OkStatus();
}

absl::Status StoreCount(std::string_view name, std::string_view value,
                        LimitSection::Setting<uint32_t>& setting) {
  absl::StatusOr<std::optional<uint32_t>> count = ParseCount(name, value);
  if (!count.ok()) return count.status();
  return Store(name, setting, *count);
}

template <typename T>
std::optional<T> Resolve(const LimitSection::Setting<T>& global,
                         const LimitSection::Setting<T>* user) {
  if (user != nullptr && user->has_value()) return **user;
  return global.has_value() ? *global : std::nullopt;
}

}  // namespace

absl::Status ParseLimitLine(std::string_view text, LimitSection& section) {
  text = StripBlanks(text);
  size_t blank = text.find_first_of(" \t");
  std::string_view name = text.substr(0, blank);
  std::string_view value =
      blank == std::string_view::npos ? std::string_view() : StripBlanks(text.substr(blank));
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat("missing limit name (want %s)", kNames));
  }
  if (value.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat("missing value for limit %s", name));
  }
  if (value.find_first_of(" \t") != std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrFormat("limit %s takes one value, not \"%s\"", name, value));
  }
  if (name == "max_qos") {
    if (value.size() != 1 || value[0] < '0' || value[0] > '2') {
      return absl::InvalidArgumentError(
          absl::StrFormat("limit max_qos wants 0, 1 or 2, not \"%s\"", value));
    }
    return Store(name, section.max_qos, std::optional<uint8_t>(value[0] - '0'));
  }
  if (name == "shared_subscriptions") {
    if (value != "allow" && value != "deny") {
      return absl::InvalidArgumentError(
          absl::StrFormat("limit shared_subscriptions wants allow or deny, not \"%s\"", value));
    }
    return Store(name, section.shared_subscriptions, std::optional<bool>(value == "allow"));
  }
  if (name == "max_subscriptions") return StoreCount(name, value, section.max_subscriptions);
  if (name == "publish_rate") return StoreCount(name, value, section.publish_rate);
  if (name == "max_connections") return StoreCount(name, value, section.max_connections);
  return absl::InvalidArgumentError(
      absl::StrFormat("unknown limit \"%s\" (want %s)", name, kNames));
}

UserLimits ResolveLimits(const LimitSection& global, const LimitSection* user) {
  UserLimits out;
  out.max_qos = Resolve(global.max_qos, user ? &user->max_qos : nullptr);
  out.shared_subscriptions =
      Resolve(global.shared_subscriptions, user ? &user->shared_subscriptions : nullptr);
  out.max_subscriptions =
      Resolve(global.max_subscriptions, user ? &user->max_subscriptions : nullptr);
  out.publish_rate = Resolve(global.publish_rate, user ? &user->publish_rate : nullptr);
  out.max_connections = Resolve(global.max_connections, user ? &user->max_connections : nullptr);
  return out;
}

}  // namespace shardmq::auth
