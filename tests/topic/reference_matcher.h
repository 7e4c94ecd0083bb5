// A deliberately naive MQTT matcher for differential tests: split both strings
// into vectors and compare level by level. Written independently of
// src/topic so a shared misreading of the spec is less likely.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace shardmq::topic::testing {

inline std::vector<std::string> SplitForReference(std::string_view s) {
  std::vector<std::string> out(1);
  for (char c : s) {
    if (c == '/') {
      out.emplace_back();
    } else {
      out.back().push_back(c);
    }
  }
  return out;
}

inline bool ReferenceMatches(std::string_view filter, std::string_view topic) {
  std::vector<std::string> f = SplitForReference(filter);
  std::vector<std::string> t = SplitForReference(topic);
  if (t[0].starts_with('$') && (f[0] == "+" || f[0] == "#")) return false;
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] == "#") return true;  // Covers the parent level too (i == t.size()).
    if (i >= t.size()) return false;
    if (f[i] != "+" && f[i] != t[i]) return false;
  }
  return f.size() == t.size();
}

}  // namespace shardmq::topic::testing
