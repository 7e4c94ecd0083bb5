// Syntax checks for topic names, topic filters and shared subscriptions
// (MQTT 5 sections 4.7 and 4.8.2, 3.1.1 section 4.7). Pure functions: the
// decoder calls them on every PUBLISH/SUBSCRIBE/UNSUBSCRIBE and the
// subscription trie (src/topic) calls them with its own limits.
//
// Example:
//   TopicLimits limits{.max_length = 1024, .max_levels = 16};
//   if (ValidateTopicFilter("a/+/#", limits) != TopicError::kOk) ...
//   SharedSubscription shared;
//   if (ParseSharedSubscription("$share/g1/a/#", limits, &shared) == TopicError::kOk)
//     // shared.group == "g1", shared.filter == "a/#"
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace shardmq::mqtt {

// Limits chosen by the caller (broker configuration). The spec's own bound is
// 65535 bytes, the most a UTF-8 Encoded String can carry.
struct TopicLimits {
  // Maximum length in bytes; values above 65535 act as 65535.
  size_t max_length = 65535;
  // Maximum number of levels ("a/b" has 2); 0 means unlimited.
  size_t max_levels = 0;
  // Also run IsValidMqttUtf8(). The decoder has already validated every
  // string it returns, so it leaves this off.
  bool check_utf8 = false;
};

// Why a topic name or filter was rejected.
enum class TopicError : uint8_t {
  kOk = 0,
  kEmpty,                   // Zero length [MQTT-4.7.3-1].
  kTooLong,                 // Longer than TopicLimits::max_length [MQTT-4.7.3-3].
  kTooManyLevels,           // More than TopicLimits::max_levels.
  kInvalidUtf8,             // Only with TopicLimits::check_utf8 [MQTT-4.7.3-2].
  kWildcardInName,          // '+' or '#' in a topic name [MQTT-3.3.2-2].
  kBadSingleLevelWildcard,  // '+' not occupying a whole level [MQTT-4.7.1-2].
  kBadMultiLevelWildcard,   // '#' not alone as the last level [MQTT-4.7.1-1].
  kBadSharedGroup,          // "$share/" group empty or has '+', '#' [MQTT-4.8.2-1/2].
  kBadSharedFilter,         // "$share/{group}" with no "/{filter}" part [MQTT-4.8.2-2].
};

// Returns a short description of `e` for logs.
const char* TopicErrorName(TopicError e);

// Number of levels in a topic name or filter: separators + 1 ("" -> 1,
// "/" -> 2, "a/b/c" -> 3).
size_t TopicLevelCount(std::string_view topic);

// Validates a topic name as used in PUBLISH and the Will Topic: non-empty,
// within limits, no wildcard characters.
TopicError ValidateTopicName(std::string_view topic, const TopicLimits& limits = {});

// Validates a plain topic filter (no "$share/" interpretation): non-empty,
// within limits, '+' only as a whole level, '#' only as the whole last level.
TopicError ValidateTopicFilter(std::string_view filter, const TopicLimits& limits = {});

// Prefix that marks a shared subscription in MQTT 5.
inline constexpr std::string_view kSharePrefix = "$share/";

// True when `filter` starts with "$share/" (MQTT 5 shared subscription).
constexpr bool IsSharedSubscription(std::string_view filter) {
  return filter.substr(0, kSharePrefix.size()) == kSharePrefix;
}

// The parts of "$share/{ShareName}/{filter}". Views into the parsed string.
struct SharedSubscription {
  std::string_view group;   // ShareName: non-empty, no '/', '+' or '#'.
  std::string_view filter;  // The topic filter the members subscribe to.
};

// Parses and validates a shared subscription filter (MQTT 5 section 4.8.2).
// `filter` must start with "$share/". The limits apply to the inner filter
// (the length limit also to the whole string).
TopicError ParseSharedSubscription(std::string_view filter, const TopicLimits& limits,
                                   SharedSubscription* out);

// Validates a filter as received in an MQTT 5 SUBSCRIBE/UNSUBSCRIBE:
// shared-subscription syntax when it starts with "$share/", a plain filter
// otherwise. For 3.x use ValidateTopicFilter ("$share/" is not special).
TopicError ValidateSubscriptionFilter(std::string_view filter, const TopicLimits& limits = {});

}  // namespace shardmq::mqtt
