// Topic name/filter syntax per MQTT 5 section 4.7 and 4.8.2. One pass over
// the bytes, no allocation.
#include "mqtt/topic_validation.h"

#include <algorithm>
#include <cstring>

#include "mqtt/utf8.h"

namespace shardmq::mqtt {
namespace {

// Shared checks: emptiness, length, UTF-8. Levels are counted by callers.
TopicError CheckCommon(std::string_view s, const TopicLimits& limits) {
  if (s.empty()) return TopicError::kEmpty;
  if (s.size() > std::min<size_t>(limits.max_length, 65535)) return TopicError::kTooLong;
  if (limits.check_utf8 && !IsValidMqttUtf8(s)) return TopicError::kInvalidUtf8;
  return TopicError::kOk;
}

constexpr uint64_t kOnes = 0x0101010101010101ull;
constexpr uint64_t kHighs = 0x8080808080808080ull;

// Non-zero when some byte of `w` equals `b` (SWAR "has zero byte" on w ^ b).
inline uint64_t HasByte(uint64_t w, uint8_t b) {
  const uint64_t x = w ^ (kOnes * b);
  return (x - kOnes) & ~x & kHighs;
}

// True when `s` contains '+' or '#'. Eight bytes per step; std::string_view's
// find_first_of would call memchr once per byte.
bool HasWildcard(std::string_view s) {
  const char* p = s.data();
  size_t n = s.size();
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    if (HasByte(w, '+') | HasByte(w, '#')) return true;
  }
  for (; n > 0; ++p, --n) {
    if (*p == '+' || *p == '#') return true;
  }
  return false;
}

// True when `s` (8 bytes or more) is plain ASCII without NUL, '+' or '#':
// a valid topic name as far as characters go, found in one pass of 8-byte
// words (the last one overlapping) instead of a UTF-8 pass and a wildcard
// pass. What it rejects is not necessarily invalid: the full checks decide.
bool PlainAsciiName(std::string_view s) {
  const char* p = s.data();
  const size_t n = s.size();
  uint64_t bad = 0;
  auto check = [&](const char* at) {
    uint64_t w;
    std::memcpy(&w, at, 8);
    bad |= (w & kHighs) | ((w - kOnes) & ~w & kHighs) | HasByte(w, '+') | HasByte(w, '#');
  };
  size_t i = 0;
  for (; i + 8 <= n; i += 8) check(p + i);
  if (i < n) check(p + n - 8);
  return bad == 0;
}

}  // namespace

const char* TopicErrorName(TopicError e) {
  switch (e) {
    case TopicError::kOk:
      return "ok";
    case TopicError::kEmpty:
      return "empty topic";
    case TopicError::kTooLong:
      return "topic too long";
    case TopicError::kTooManyLevels:
      return "too many topic levels";
    case TopicError::kInvalidUtf8:
      return "topic is not valid UTF-8";
    case TopicError::kWildcardInName:
      return "wildcard in topic name";
    case TopicError::kBadSingleLevelWildcard:
      return "'+' must occupy a whole level";
    case TopicError::kBadMultiLevelWildcard:
      return "'#' must be the whole last level";
    case TopicError::kBadSharedGroup:
      return "invalid shared subscription group";
    case TopicError::kBadSharedFilter:
      return "shared subscription without a topic filter";
  }
  return "unknown topic error";
}

size_t TopicLevelCount(std::string_view topic) {
  return static_cast<size_t>(std::count(topic.begin(), topic.end(), '/')) + 1;
}

TopicError ValidateTopicName(std::string_view topic, const TopicLimits& limits) {
  // Every PUBLISH is checked: the common case, plain ASCII, gets one pass.
  const bool plain = topic.size() >= 8 &&
                     topic.size() <= std::min<size_t>(limits.max_length, 65535) &&
                     PlainAsciiName(topic);
  if (!plain) {
    if (TopicError e = CheckCommon(topic, limits); e != TopicError::kOk) return e;
    if (HasWildcard(topic)) return TopicError::kWildcardInName;
  }
  // A topic of n bytes has at most n + 1 levels: short ones need no count.
  if (limits.max_levels != 0 && topic.size() >= limits.max_levels &&
      TopicLevelCount(topic) > limits.max_levels) {
    return TopicError::kTooManyLevels;
  }
  return TopicError::kOk;
}

TopicError ValidateTopicFilter(std::string_view filter, const TopicLimits& limits) {
  if (TopicError e = CheckCommon(filter, limits); e != TopicError::kOk) return e;
  const size_t n = filter.size();
  size_t levels = 1;
  for (size_t i = 0; i < n; ++i) {
    const char c = filter[i];
    if (c == '/') {
      ++levels;
    } else if (c == '+') {
      const bool starts_level = i == 0 || filter[i - 1] == '/';
      const bool ends_level = i + 1 == n || filter[i + 1] == '/';
      if (!starts_level || !ends_level) return TopicError::kBadSingleLevelWildcard;
    } else if (c == '#') {
      const bool starts_level = i == 0 || filter[i - 1] == '/';
      if (!starts_level || i + 1 != n) return TopicError::kBadMultiLevelWildcard;
    }
  }
  if (limits.max_levels != 0 && levels > limits.max_levels) return TopicError::kTooManyLevels;
  return TopicError::kOk;
}

TopicError ParseSharedSubscription(std::string_view filter, const TopicLimits& limits,
                                   SharedSubscription* out) {
  if (filter.size() > std::min<size_t>(limits.max_length, 65535)) return TopicError::kTooLong;
  if (!IsSharedSubscription(filter)) return TopicError::kBadSharedGroup;
  const std::string_view rest = filter.substr(kSharePrefix.size());
  const size_t slash = rest.find('/');
  const std::string_view group = rest.substr(0, slash);
  // [MQTT-4.8.2-1]: ShareName is at least one character long.
  if (group.empty()) return TopicError::kBadSharedGroup;
  // [MQTT-4.8.2-2]: ShareName MUST NOT contain "/", "+" or "#".
  if (HasWildcard(group)) return TopicError::kBadSharedGroup;
  if (slash == std::string_view::npos) return TopicError::kBadSharedFilter;
  const std::string_view inner = rest.substr(slash + 1);
  if (inner.empty()) return TopicError::kBadSharedFilter;
  TopicLimits inner_limits = limits;
  inner_limits.check_utf8 = false;
  if (limits.check_utf8 && !IsValidMqttUtf8(filter)) return TopicError::kInvalidUtf8;
  if (TopicError e = ValidateTopicFilter(inner, inner_limits); e != TopicError::kOk) return e;
  if (out != nullptr) *out = SharedSubscription{group, inner};
  return TopicError::kOk;
}

TopicError ValidateSubscriptionFilter(std::string_view filter, const TopicLimits& limits) {
  if (IsSharedSubscription(filter)) return ParseSharedSubscription(filter, limits, nullptr);
  return ValidateTopicFilter(filter, limits);
}

}  // namespace shardmq::mqtt
