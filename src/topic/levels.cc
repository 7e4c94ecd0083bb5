#include "topic/levels.h"

namespace shardmq::topic {

bool FilterMatches(std::string_view filter, std::string_view topic_name) {
  // [MQTT-4.7.2-1]: "$SYS/x" is reachable only by filters that spell out "$...".
  if (!topic_name.empty() && topic_name[0] == '$' && !filter.empty() &&
      (filter[0] == '+' || filter[0] == '#')) {
    return false;
  }
  std::string_view f_rest = filter, t_rest = topic_name;
  bool f_more = true, t_more = true;
  while (f_more) {
    std::string_view f = NextLevel(f_rest, f_more);
    // '#' also matches the parent level, so it matches whether or not the
    // topic has levels left.
    if (f == "#") return true;
    if (!t_more) return false;  // Filter is longer than the topic.
    std::string_view t = NextLevel(t_rest, t_more);
    if (f != "+" && f != t) return false;
  }
  return !t_more;  // Topic must not be longer than the filter.
}

bool HasWildcard(std::string_view filter) {
  for (std::string_view level : TopicLevels(filter)) {
    if (level == "+" || level == "#") return true;
  }
  return false;
}

std::optional<SharedSubscription> ParseSharedSubscription(std::string_view filter) {
  if (!IsSharedSubscription(filter)) return std::nullopt;
  std::string_view rest = filter.substr(kSharePrefix.size());
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == rest.size()) {
    return std::nullopt;
  }
  return SharedSubscription{rest.substr(0, slash), rest.substr(slash + 1)};
}

}  // namespace shardmq::topic
