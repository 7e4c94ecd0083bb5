#include "config_file.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <toml.hpp>
#include <type_traits>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace shardmq::daemon {
namespace {

// std::map keeps keys in one order from run to run; entries are then sorted
// by line so that the first mistake in the file is the one reported.
using Value = toml::basic_value<toml::discard_comments, std::map, std::vector>;

// This abseil's string_view is its own type.
absl::string_view Absl(std::string_view text) { return {text.data(), text.size()}; }

std::string_view TypeName(const Value& value) {
  switch (value.type()) {
    case toml::value_t::boolean:
      return "a boolean";
    case toml::value_t::integer:
      return "an integer";
    case toml::value_t::floating:
      return "a floating-point number";
    case toml::value_t::string:
      return "a string";
    case toml::value_t::array:
      return "an array";
    case toml::value_t::table:
      return "a table";
    default:
      return "a date or time";
  }
}

// "tcp or tls".
std::string ProtocolList() {
  std::string list;
  for (std::string_view protocol : kListenerProtocols) {
    if (!list.empty()) list += " or ";
    list += protocol;
  }
  return list;
}

uint32_t LineOf(const Value& value) { return value.location().line(); }

// One file's messages: "FILE:LINE: key: why".
class Errors {
 public:
  explicit Errors(const std::string& path) : path_(path) {}

  std::string Where(const Value& value, std::string_view key) const {
    return absl::StrFormat("%s:%d: %s", path_, LineOf(value), key);
  }
  absl::Status At(const Value& value, std::string_view key, std::string_view why) const {
    return absl::InvalidArgumentError(absl::StrFormat("%s: %s", Where(value, key), why));
  }
  absl::Status WrongType(const Value& value, std::string_view key, std::string_view want) const {
    return At(value, key, absl::StrFormat("must be %s, not %s", want, TypeName(value)));
  }

 private:
  const std::string& path_;
};

// The text an integer flag of type T would take, if `number` fits in T.
template <typename T>
bool IntegerText(int64_t number, std::string* text) {
  bool fits = false;
  if constexpr (std::is_signed_v<T>) {
    fits = number >= std::numeric_limits<T>::min() && number <= std::numeric_limits<T>::max();
  } else {
    fits = number >= 0 && static_cast<uint64_t>(number) <= std::numeric_limits<T>::max();
  }
  if (fits) *text = std::to_string(number);
  return fits;
}

// A top-level key that names a flag: its value as flag text, checked only
// against the flag's type (the daemon checks ranges and meaning).
absl::StatusOr<ConfigSetting> FlagSetting(const Errors& errors, const std::string& key,
                                          const Value& value) {
  absl::CommandLineFlag* flag = absl::FindCommandLineFlag(Absl(key));
  ConfigSetting setting{.flag = key, .where = errors.Where(value, key)};
  if (flag->IsOfType<bool>()) {
    if (!value.is_boolean()) return errors.WrongType(value, key, "true or false");
    setting.value = value.as_boolean() ? "true" : "false";
  } else if (flag->IsOfType<int32_t>() || flag->IsOfType<uint32_t>() ||
             flag->IsOfType<uint64_t>()) {
    if (!value.is_integer()) return errors.WrongType(value, key, "an integer");
    const int64_t number = value.as_integer();
    const bool fits = flag->IsOfType<int32_t>()    ? IntegerText<int32_t>(number, &setting.value)
                      : flag->IsOfType<uint32_t>() ? IntegerText<uint32_t>(number, &setting.value)
                                                   : IntegerText<uint64_t>(number, &setting.value);
    if (!fits) {
      return errors.At(value, key,
                       absl::StrFormat("%d is out of range for this key%s", number,
                                       number < 0 ? " (it cannot be negative)" : ""));
    }
  } else if (flag->IsOfType<std::string>()) {
    // allow_anonymous takes true, false or "auto": a TOML boolean is the
    // natural way to write the first two.
    if (key == "allow_anonymous" && value.is_boolean()) {
      setting.value = value.as_boolean() ? "true" : "false";
    } else if (!value.is_string()) {
      return errors.WrongType(value, key,
                              key == "allow_anonymous" ? "true, false or \"auto\"" : "a string");
    } else {
      setting.value = value.as_string().str;
    }
  } else if (flag->IsOfType<std::vector<std::string>>()) {
    if (!value.is_array()) return errors.WrongType(value, key, "an array of strings");
    for (const Value& item : value.as_array()) {
      if (!item.is_string()) return errors.WrongType(item, key, "a string");
      setting.items.push_back(item.as_string().str);
    }
    setting.value = absl::StrJoin(setting.items, ",");
  } else {
    return errors.At(value, key, "cannot be set in a config file");  // a flag type added later
  }
  return setting;
}

// The keys of one [[listener]] table, checked for type but not yet for
// whether they fit together.
struct ListenerKeys {
  const Value* address = nullptr;
  const Value* path = nullptr;
  std::string protocol = "tcp";
  // The per-listener options, as "key=value" for the text after '?'.
  std::vector<std::string> options;
  const Value* mode = nullptr;
  const Value* owner = nullptr;
};

// A mode written as a string of octal digits, "0660". TOML integers are
// refused: mode = 660 would be read as decimal 660, not 0660.
absl::StatusOr<std::string> ModeText(const Errors& errors, const Value& value) {
  if (!value.is_string()) {
    return errors.At(value, "listener.mode",
                     absl::StrFormat("must be a string of octal digits such as \"0660\", not %s%s",
                                     TypeName(value),
                                     value.is_integer() ? " (660 would be read as decimal)" : ""));
  }
  const std::string& text = value.as_string().str;
  const bool octal =
      !text.empty() && text.size() <= 4 && text.find_first_not_of("01234567") == std::string::npos;
  if (!octal || std::stoul(text, nullptr, 8) > 0777) {
    return errors.At(value, "listener.mode",
                     absl::StrFormat("\"%s\" is not a permission mode (octal, 0000-0777, "
                                     "e.g. \"0660\")",
                                     text));
  }
  return text;
}

// Reads one key of a [[listener]] table into `keys`.
absl::Status ListenerKey(const Errors& errors, const std::string& key, const Value& value,
                         ListenerKeys& keys) {
  const std::string name = "listener." + key;
  if (key == "address") {
    if (!value.is_string()) return errors.WrongType(value, name, "a string");
    keys.address = &value;
  } else if (key == "protocol") {
    if (!value.is_string()) return errors.WrongType(value, name, "a string");
    keys.protocol = value.as_string().str;
    if (std::find(std::begin(kListenerProtocols), std::end(kListenerProtocols), keys.protocol) ==
        std::end(kListenerProtocols)) {
      return errors.At(value, name,
                       absl::StrFormat("\"%s\" is not a protocol this broker serves (%s)",
                                       keys.protocol, ProtocolList()));
    }
  } else if (key == "path") {
    if (!value.is_string()) return errors.WrongType(value, name, "a string");
    if (value.as_string().str.empty() || value.as_string().str[0] != '/') {
      return errors.At(value, name, "must start with /");
    }
    keys.path = &value;
  } else if (key == "max_connections") {
    if (!value.is_integer()) return errors.WrongType(value, name, "an integer");
    std::string text;
    if (!IntegerText<uint32_t>(value.as_integer(), &text)) {
      return errors.At(value, name,
                       absl::StrFormat("%d is out of range (0-4294967295; 0: no per-listener "
                                       "bound)",
                                       value.as_integer()));
    }
    keys.options.push_back("max_connections=" + text);
  } else if (key == "proxy_protocol") {
    if (!value.is_boolean()) return errors.WrongType(value, name, "true or false");
    if (value.as_boolean()) keys.options.push_back("proxy_protocol=true");
  } else if (key == "mode") {
    absl::StatusOr<std::string> mode = ModeText(errors, value);
    if (!mode.ok()) return mode.status();
    keys.mode = &value;
    keys.options.push_back("mode=" + *mode);
  } else if (key == "owner") {
    if (!value.is_string()) return errors.WrongType(value, name, "a string (\"user:group\")");
    keys.owner = &value;
    keys.options.push_back("owner=" + value.as_string().str);
  } else {
    return errors.At(value, name,
                     "unknown key (a listener has address, protocol, max_connections, "
                     "proxy_protocol; path for ws, wss and unix; mode and owner for unix)");
  }
  return absl::OkStatus();
}

// The --listen text of a protocol = "unix" listener: unix:///path.
absl::StatusOr<std::string> UnixListenText(const Errors& errors, const Value& table,
                                           const ListenerKeys& keys) {
  if (keys.address != nullptr) {
    return errors.At(*keys.address, "listener.address",
                     "a unix listener has path = \"/run/shardmq/mqtt.sock\", not an address");
  }
  if (keys.path == nullptr) {
    return errors.At(table, "listener", "protocol = \"unix\" needs path = \"/absolute/path.sock\"");
  }
  return "unix://" + keys.path->as_string().str;
}

// The --listen text of a tcp, tls, ws or wss listener: [scheme://]host:port[/path].
absl::StatusOr<std::string> NetworkListenText(const Errors& errors, const Value& table,
                                              const ListenerKeys& keys) {
  if (keys.address == nullptr) {
    return errors.At(table, "listener", "needs an address = \"host:port\"");
  }
  for (const Value* unix_only : {keys.mode, keys.owner}) {
    if (unix_only != nullptr) {
      return errors.At(*unix_only, unix_only == keys.mode ? "listener.mode" : "listener.owner",
                       "only unix listeners have a socket file to set it on");
    }
  }
  const std::string& text = keys.address->as_string().str;
  // One way to say it: "tls://" in the address and protocol = "tcp" would
  // contradict each other.
  if (text.find("://") != std::string::npos) {
    return errors.At(
        *keys.address, "listener.address",
        absl::StrFormat("\"%s\": give host:port here and the scheme as protocol", text));
  }
  const bool websocket = keys.protocol == "ws" || keys.protocol == "wss";
  if (keys.path != nullptr && !websocket) {
    return errors.At(*keys.path, "listener.path", "only ws, wss and unix listeners have a path");
  }
  std::string value = keys.protocol == "tcp" ? text : keys.protocol + "://" + text;
  if (keys.path != nullptr) value += keys.path->as_string().str;
  return value;
}

// One [[listener]] table: address = "host:port", protocol = "tcp" | "tls" |
// "ws" | "wss" | "unix", for WebSocket an optional path = "/mqtt", for unix
// path = "/run/x.sock" (and no address), and the per-listener options
// (max_connections, proxy_protocol; mode and owner for unix), which become
// the address's "?key=value&..." text.
absl::StatusOr<ConfigSetting> ListenerSetting(const Errors& errors, const Value& table) {
  if (!table.is_table()) {
    return errors.WrongType(table, "listener", "a table ([[listener]] with address and protocol)");
  }
  ListenerKeys keys;
  for (const auto& [key, value] : table.as_table()) {
    if (absl::Status read = ListenerKey(errors, key, value, keys); !read.ok()) return read;
  }
  const bool unix_socket = keys.protocol == "unix";
  absl::StatusOr<std::string> text =
      unix_socket ? UnixListenText(errors, table, keys) : NetworkListenText(errors, table, keys);
  if (!text.ok()) return text.status();
  std::string value = *std::move(text);
  if (!keys.options.empty()) value += "?" + absl::StrJoin(keys.options, "&");
  const Value& where = unix_socket ? *keys.path : *keys.address;
  return ConfigSetting{
      .flag = "listen",
      .value = value,
      .where = errors.Where(where, unix_socket ? "listener.path" : "listener.address")};
}

// Why `key` is not a key, with a hint where one helps.
std::string UnknownKey(const std::string& key, absl::Span<const std::string_view> flags) {
  std::string underscored = key;
  std::replace(underscored.begin(), underscored.end(), '-', '_');
  if (underscored != key && std::find(flags.begin(), flags.end(), underscored) != flags.end()) {
    return absl::StrFormat("unknown key (keys use underscores: %s)", underscored);
  }
  if (key == "listen") return "unknown key (write listeners as [[listener]] tables)";
  if (key == "config") return "cannot be set in a config file";
  return "unknown key (every key is in tools/shardmq.example.toml)";
}

// toml11's message is several lines with the source quoted; the operator gets
// one line: FILE:LINE and its first line. The exception's location is the
// line of the mistake (for a key defined twice, the second definition).
absl::Status SyntaxError(const std::string& path, const toml::syntax_error& error) {
  std::string_view text = error.what();
  std::string_view first = text.substr(0, text.find('\n'));
  if (first.substr(0, 8) == "[error] ") first.remove_prefix(8);
  // "toml::parse_key_value_pair: missing `=`": the parser's function name
  // means nothing to an operator.
  if (size_t colon = first.find(": "); first.substr(0, 6) == "toml::" && colon != first.npos) {
    first.remove_prefix(colon + 2);
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("%s:%d: syntax error: %s", path, error.location().line(), first));
}

}  // namespace

absl::StatusOr<std::vector<ConfigSetting>> LoadConfigFile(
    const std::string& path, absl::Span<const std::string_view> flags) {
  // A directory opens like a file but cannot be read: toml11 would fail on
  // its size in ways that are not an error message.
  std::error_code ignored;
  if (std::filesystem::is_directory(path, ignored)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: cannot read the config file: it is a directory", path));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: cannot read the config file: %s", path, std::strerror(errno)));
  }
  Value root;
  // toml11 reports with exceptions; they stop here, at the edge of the
  // control plane.
  try {
    root = toml::parse<toml::discard_comments, std::map, std::vector>(in, path);
  } catch (const toml::syntax_error& error) {
    return SyntaxError(path, error);
  } catch (const std::exception& error) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: %s", path, error.what()));
  }

  struct Entry {
    uint32_t line;
    const std::string* key;
    const Value* value;
  };
  std::vector<Entry> entries;
  for (const auto& [key, value] : root.as_table()) entries.push_back({LineOf(value), &key, &value});
  std::stable_sort(entries.begin(), entries.end(),
                   [](const Entry& a, const Entry& b) { return a.line < b.line; });

  const Errors errors(path);
  std::vector<ConfigSetting> settings;
  for (const Entry& entry : entries) {
    const std::string& key = *entry.key;
    if (key == "listener" && std::find(flags.begin(), flags.end(), "listen") != flags.end()) {
      if (!entry.value->is_array()) {
        return errors.WrongType(*entry.value, key, "an array of tables: write [[listener]]");
      }
      for (const Value& table : entry.value->as_array()) {
        absl::StatusOr<ConfigSetting> listener = ListenerSetting(errors, table);
        if (!listener.ok()) return listener.status();
        settings.push_back(*std::move(listener));
      }
      continue;
    }
    if (key == "listen" || std::find(flags.begin(), flags.end(), key) == flags.end() ||
        absl::FindCommandLineFlag(Absl(key)) == nullptr) {
      return errors.At(*entry.value, key, UnknownKey(key, flags));
    }
    absl::StatusOr<ConfigSetting> setting = FlagSetting(errors, key, *entry.value);
    if (!setting.ok()) return setting.status();
    settings.push_back(*std::move(setting));
  }
  return settings;
}

}  // namespace shardmq::daemon
