// See amqp_keys.h for the mapping and why its long-name fallbacks are safe.
#include "cluster/amqp_keys.h"

#include <cstdint>

#include "absl/strings/str_format.h"
#include "topic/levels.h"

namespace shardmq::cluster {
namespace {

// Appends "." + the word for one literal level.
void AppendWord(std::string_view level, std::string& out) {
  out.push_back('.');
  out.push_back('w');
  for (char c : level) {
    switch (c) {
      case '.':
        out += "%2E";
        break;
      case '*':
        out += "%2A";
        break;
      case '#':
        out += "%23";
        break;
      case '%':
        out += "%25";
        break;
      default:
        out.push_back(c);
    }
  }
}

bool IsWildcard(std::string_view level) { return level == "+" || level == "#"; }

// `prefix` followed by the filter's leading literal levels, as many as fit
// with a final ".#", then ".#": a superset of everything in `prefix`'s class
// whose first levels are those.
std::string PrefixBinding(std::string_view prefix, std::string_view filter) {
  std::string key(prefix);
  std::string word;
  for (std::string_view level : topic::TopicLevels(filter)) {
    if (IsWildcard(level)) break;
    word.clear();
    AppendWord(level, word);
    if (key.size() + word.size() + 2 > kMaxAmqpKey) break;
    key += word;
  }
  key += ".#";
  return key;
}

// FNV-1a, 128 bits (offset basis and prime from the FNV reference).
__extension__ typedef unsigned __int128 Uint128;

Uint128 Fnv1a128(std::string_view data) {
  const Uint128 prime = (Uint128{1} << 88) | 0x13b;
  Uint128 hash = (Uint128{0x6c62272e07bb0142} << 64) | 0x62b821756295c58d;
  for (char c : data) {
    hash ^= static_cast<unsigned char>(c);
    hash *= prime;
  }
  return hash;
}

}  // namespace

std::string RoutingKey(std::string_view topic_name) {
  const char* cls = !topic_name.empty() && topic_name[0] == '$' ? "d" : "n";
  std::string key(cls);
  for (std::string_view level : topic::TopicLevels(topic_name)) AppendWord(level, key);
  if (key.size() <= kMaxAmqpKey) return key;
  // Truncated class: the leading words that fit. A word that does not fit
  // ends the key, so the words kept are always a prefix of the name's.
  std::string truncated = std::string("t") + cls;
  std::string word;
  for (std::string_view level : topic::TopicLevels(topic_name)) {
    word.clear();
    AppendWord(level, word);
    if (truncated.size() + word.size() > kMaxAmqpKey) break;
    truncated += word;
  }
  return truncated;
}

std::vector<std::string> BindingKeys(std::string_view filter) {
  // The class: a leading wildcard never matches '$' topics [MQTT-4.7.2-1].
  std::string_view first = filter.substr(0, filter.find('/'));
  const char* cls = !IsWildcard(first) && !first.empty() && first[0] == '$' ? "d" : "n";
  std::string exact(cls);
  bool wildcard = false;
  for (std::string_view level : topic::TopicLevels(filter)) {
    if (level == "+") {
      exact += ".*";
      wildcard = true;
    } else if (level == "#") {
      exact += ".#";
      wildcard = true;
    } else {
      AppendWord(level, exact);
    }
  }
  std::vector<std::string> keys;
  bool long_filter = exact.size() > kMaxAmqpKey;
  keys.push_back(long_filter ? PrefixBinding(cls, filter) : std::move(exact));
  // A filter that can match a topic longer than itself (a wildcard), or is
  // long itself, may match a topic sent with a truncated routing key.
  if (wildcard || long_filter) keys.push_back(PrefixBinding(std::string("t") + cls, filter));
  return keys;
}

std::string SharedQueueName(std::string_view group, std::string_view filter) {
  std::string key(group);
  key.push_back('\0');
  key.append(filter);
  const Uint128 hash = Fnv1a128(key);
  return absl::StrFormat("shardmq.share.%016x%016x", static_cast<uint64_t>(hash >> 64),
                         static_cast<uint64_t>(hash));
}

}  // namespace shardmq::cluster
