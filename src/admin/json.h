// A few helpers to write JSON text (the admin API only writes JSON; request
// parameters come as query strings). Strings are escaped per RFC 8259; the
// caller passes valid UTF-8 (client ids, topics and filters are checked as
// such by the codec; payloads go through JsonPayload).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "mqtt/utf8.h"

namespace shardmq::admin {

inline void AppendJsonString(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", static_cast<unsigned char>(c));
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

inline std::string JsonString(std::string_view s) {
  std::string out;
  AppendJsonString(out, s);
  return out;
}

// "payload": the text when it is valid UTF-8, else null; and
// "payload_base64" always, so binary payloads survive.
inline void AppendJsonPayload(std::string& out, std::string_view payload) {
  out += "\"payload\":";
  if (mqtt::IsValidMqttUtf8(payload)) {
    AppendJsonString(out, payload);
  } else {
    out += "null";
  }
  absl::StrAppend(&out, ",\"payload_base64\":\"",
                  absl::Base64Escape(absl::string_view(payload.data(), payload.size())), "\"");
}

}  // namespace shardmq::admin
