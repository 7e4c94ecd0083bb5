#include "auth/text_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_format.h"

namespace shardmq::auth {

absl::StatusOr<std::string> ReadTextFile(std::string_view path) {
  std::ifstream in{std::string(path), std::ios::binary};
  if (!in) {
    return absl::NotFoundError(absl::StrFormat("%s: cannot open: %s", path, std::strerror(errno)));
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) {
    return absl::InternalError(absl::StrFormat("%s: read error: %s", path, std::strerror(errno)));
  }
  return std::move(buffer).str();
}

absl::Status ForEachLine(std::string_view contents,
                         absl::FunctionRef<absl::Status(int, std::string_view)> fn) {
  int line_no = 0;
  while (!contents.empty()) {
    ++line_no;
    size_t nl = contents.find('\n');
    std::string_view line = contents.substr(0, nl);
    contents.remove_prefix(nl == std::string_view::npos ? contents.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (absl::Status s = fn(line_no, line); !s.ok()) return s;
  }
  return absl::OkStatus();
}

std::string_view StripBlanks(std::string_view text) {
  size_t begin = text.find_first_not_of(" \t");
  if (begin == std::string_view::npos) return {};
  size_t end = text.find_last_not_of(" \t");
  return text.substr(begin, end - begin + 1);
}

}  // namespace shardmq::auth
