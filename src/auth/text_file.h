// Helpers shared by the password and ACL file parsers: read a whole file,
// walk its lines with 1-based numbers, trim blanks. Private to src/auth.
#pragma once

#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shardmq::auth {

// The whole file; the error names the path and the OS reason.
absl::StatusOr<std::string> ReadTextFile(std::string_view path);

// Calls `fn(line_number, line)` for each line (without '\n' or a trailing
// '\r'), stopping at and returning the first error.
absl::Status ForEachLine(std::string_view contents,
                         absl::FunctionRef<absl::Status(int, std::string_view)> fn);

// `text` without leading and trailing spaces and tabs.
std::string_view StripBlanks(std::string_view text);

}  // namespace shardmq::auth
