// The daemon's config file (--config): what it sets, that the command line
// overrides it, that every mistake names the file, line and key, and that
// tools/shardmq.example.toml names every flag with its default.
#include "config_file.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "daemon_flags.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shardmq::daemon {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Runs ParseDaemonFlags over a command line given without the program name.
absl::StatusOr<DaemonConfig> Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "shardmq");
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  return ParseDaemonFlags(static_cast<int>(argv.size()), argv.data());
}

class ConfigFileTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const std::string& path : written_) std::remove(path.c_str());
  }
  // Writes `contents` to a fresh file and returns its path.
  std::string Write(std::string_view contents) {
    std::string path = absl::StrFormat("%s/shardmq_config_%d_%d.toml", ::testing::TempDir(),
                                       getpid(), written_.size());
    std::ofstream(path, std::ios::binary | std::ios::trunc) << contents;
    written_.push_back(path);
    return path;
  }
  // The start-up error for a file with `contents`, the file's path written
  // as FILE.
  std::string Error(std::string_view contents) {
    std::string file = Write(contents);
    absl::StatusOr<DaemonConfig> config = Parse({"--config=" + file});
    if (config.ok()) return "(no error)";
    return absl::StrReplaceAll(config.status().message(), {{file, "FILE"}});
  }
  std::string path() const { return written_.back(); }

 private:
  std::vector<std::string> written_;
};

TEST_F(ConfigFileTest, SetsFlagsAndListeners) {
  absl::StatusOr<DaemonConfig> config = Parse({"--config=" + Write(R"(
log_level = "debug"
max_packet_size = 4096
queue_qos0_offline = true
max_queued_bytes = 1099511627776
deny_subscribe = ["secret/#", "a,b"]
allow_anonymous = false
cpu_affinity = "none"

[[listener]]
address = "127.0.0.1:0"

[[listener]]
address = "[::1]:0"
protocol = "tcp"
)")});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->config_file, path());
  EXPECT_EQ(config->log_level, base::LogLevel::kDebug);
  EXPECT_EQ(config->options.limits.max_packet_size, 4096u);
  EXPECT_TRUE(config->options.limits.queue_qos0_offline);
  EXPECT_EQ(config->options.limits.max_queued_bytes, 1ull << 40);
  // An item with a comma stays one filter: arrays do not go through the
  // flag's comma splitting.
  EXPECT_THAT(config->options.limits.denied_filters, ElementsAre("secret/#", "a,b"));
  EXPECT_FALSE(config->allow_anonymous);
  EXPECT_THAT(config->options.listeners, ElementsAre("127.0.0.1:0", "[::1]:0"));
}

TEST_F(ConfigFileTest, TlsListenerBecomesTlsScheme) {
  absl::StatusOr<std::vector<ConfigSetting>> settings = LoadConfigFile(Write(R"(
[[listener]]
address = "0.0.0.0:8883"
protocol = "tls"
)"),
                                                                       ConfigurableFlags());
  ASSERT_TRUE(settings.ok()) << settings.status();
  ASSERT_EQ(settings->size(), 1u);
  EXPECT_EQ((*settings)[0].flag, "listen");
  EXPECT_EQ((*settings)[0].value, "tls://0.0.0.0:8883");
  EXPECT_EQ((*settings)[0].where, path() + ":3: listener.address");
}

TEST_F(ConfigFileTest, CommandLineOverridesTheFileWhereverItStands) {
  std::string file = Write(R"(
max_packet_size = 4096
max_inflight = 7
[[listener]]
address = "127.0.0.1:0"
)");
  absl::StatusOr<DaemonConfig> config =
      Parse({"--max-packet-size=2048", "--config", file, "--listen=[::1]:0"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->options.limits.max_packet_size, 2048u);
  EXPECT_EQ(config->options.limits.max_inflight, 7);
  // --listen replaces the file's listeners, as any flag replaces a value.
  EXPECT_THAT(config->options.listeners, ElementsAre("[::1]:0"));
  // A value fixed on the command line is reported as the flag's.
  absl::StatusOr<DaemonConfig> bad = Parse({"--config", file, "--max-inflight=0"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "--max-inflight=0: must be between 1 and 65535");
}

TEST_F(ConfigFileTest, EveryParseStartsFromTheDefaults) {
  ASSERT_TRUE(Parse({"--config=" + Write("max_packet_size = 4096\nlog_level = \"error\"\n")}).ok());
  absl::StatusOr<DaemonConfig> config = Parse({});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->options.limits.max_packet_size, 1u << 20);
  EXPECT_EQ(config->log_level, base::LogLevel::kInfo);
  EXPECT_EQ(config->config_file, "");
  EXPECT_THAT(config->options.listeners, ElementsAre("127.0.0.1:1883"));
}

TEST_F(ConfigFileTest, UnixListenerWithOptions) {
  absl::StatusOr<DaemonConfig> config = Parse({"--config=" + Write(R"(
[[listener]]
protocol = "unix"
path = "/run/shardmq/mqtt.sock"
mode = "0660"
owner = "mqtt:mqtt"
max_connections = 100

[[listener]]
address = "0.0.0.0:1883"
max_connections = 5000
proxy_protocol = true

[[listener]]
address = "127.0.0.1:1884"
proxy_protocol = false
max_connections = 0
)")});
  ASSERT_TRUE(config.ok()) << config.status();
  // The options follow '?' in key order; proxy_protocol = false is the
  // default and says nothing.
  EXPECT_THAT(config->options.listeners,
              ElementsAre("unix:///run/shardmq/mqtt.sock?max_connections=100&mode=0660&"
                          "owner=mqtt:mqtt",
                          "0.0.0.0:1883?max_connections=5000&proxy_protocol=true",
                          "127.0.0.1:1884?max_connections=0"));
}

TEST_F(ConfigFileTest, UnixListenerIsWhereItsPathIs) {
  absl::StatusOr<std::vector<ConfigSetting>> settings = LoadConfigFile(Write(R"(
[[listener]]
protocol = "unix"

path = "/tmp/mqtt.sock"
)"),
                                                                       ConfigurableFlags());
  ASSERT_TRUE(settings.ok()) << settings.status();
  ASSERT_EQ(settings->size(), 1u);
  EXPECT_EQ((*settings)[0].value, "unix:///tmp/mqtt.sock");
  EXPECT_EQ((*settings)[0].where, path() + ":5: listener.path");
}

TEST_F(ConfigFileTest, BadUnixListenerOrOption) {
  EXPECT_EQ(Error("[[listener]]\nprotocol = \"unix\"\naddress = \"/run/x.sock\"\n"),
            "FILE:3: listener.address: a unix listener has path = \"/run/shardmq/mqtt.sock\", "
            "not an address");
  EXPECT_EQ(Error("[[listener]]\nprotocol = \"unix\"\n"),
            "FILE:1: listener: protocol = \"unix\" needs path = \"/absolute/path.sock\"");
  EXPECT_EQ(Error("[[listener]]\nprotocol = \"unix\"\npath = \"run/x.sock\"\n"),
            "FILE:3: listener.path: must start with /");
  // 660 written as a TOML integer is decimal 660, not the mode 0660.
  EXPECT_EQ(Error("[[listener]]\nprotocol = \"unix\"\npath = \"/x.sock\"\nmode = 660\n"),
            "FILE:4: listener.mode: must be a string of octal digits such as \"0660\", not an "
            "integer (660 would be read as decimal)");
  EXPECT_EQ(Error("[[listener]]\nprotocol = \"unix\"\npath = \"/x.sock\"\nmode = \"0680\"\n"),
            "FILE:4: listener.mode: \"0680\" is not a permission mode (octal, 0000-0777, e.g. "
            "\"0660\")");
  EXPECT_EQ(Error("[[listener]]\nprotocol = \"unix\"\npath = \"/x.sock\"\nmode = \"1777\"\n"),
            "FILE:4: listener.mode: \"1777\" is not a permission mode (octal, 0000-0777, e.g. "
            "\"0660\")");
  EXPECT_EQ(Error("[[listener]]\nprotocol = \"unix\"\npath = \"/x.sock\"\nowner = 0\n"),
            "FILE:4: listener.owner: must be a string (\"user:group\"), not an integer");
  // Checked by the address parser, reported where the listener is.
  EXPECT_EQ(Error("[[listener]]\nprotocol = \"unix\"\npath = \"/x.sock\"\nowner = \"a b\"\n"),
            "FILE:3: listener.path = unix:///x.sock?owner=a b: \"unix:///x.sock?owner=a b\": "
            "owner=\"a b\": write user or user:group");
  EXPECT_EQ(Error("[[listener]]\naddress = \"127.0.0.1:1883\"\nmode = \"0660\"\n"),
            "FILE:3: listener.mode: only unix listeners have a socket file to set it on");
  EXPECT_EQ(Error("[[listener]]\naddress = \"127.0.0.1:1883\"\nowner = \"mqtt\"\n"),
            "FILE:3: listener.owner: only unix listeners have a socket file to set it on");
  EXPECT_EQ(Error("[[listener]]\naddress = \"127.0.0.1:1883\"\npath = \"/mqtt\"\n"),
            "FILE:3: listener.path: only ws, wss and unix listeners have a path");
  EXPECT_EQ(Error("[[listener]]\naddress = \"127.0.0.1:1883\"\nmax_connections = -1\n"),
            "FILE:3: listener.max_connections: -1 is out of range (0-4294967295; 0: no "
            "per-listener bound)");
  EXPECT_EQ(Error("[[listener]]\naddress = \"127.0.0.1:1883\"\nmax_connections = \"10\"\n"),
            "FILE:3: listener.max_connections: must be an integer, not a string");
  EXPECT_EQ(Error("[[listener]]\naddress = \"127.0.0.1:1883\"\nproxy_protocol = \"yes\"\n"),
            "FILE:3: listener.proxy_protocol: must be true or false, not a string");
}

// The example's commented-out [[listener]] tables are valid too: uncommented,
// each is a listener the daemon accepts.
TEST_F(ConfigFileTest, ExampleListenersParse) {
  std::ifstream in(SHARDMQ_EXAMPLE_CONFIG);
  std::string line, examples;
  int tables = 0;
  while (std::getline(in, line)) {
    if (line.rfind("#   ", 0) != 0) continue;
    line = line.substr(4);
    if (line == "[[listener]]") ++tables;
    if (tables > 0) examples += line + "\n";
  }
  ASSERT_GE(tables, 2) << examples;
  absl::StatusOr<DaemonConfig> config = Parse({"--config=" + Write(examples)});
  ASSERT_TRUE(config.ok()) << config.status() << "\n" << examples;
  EXPECT_EQ(config->options.listeners.size(), static_cast<size_t>(tables));
}

// Every mistake stops start-up with "FILE:LINE: key".
TEST_F(ConfigFileTest, UnknownKey) {
  EXPECT_EQ(Error("log_level = \"info\"\nmax_packets = 3\n"),
            "FILE:2: max_packets: unknown key (every key is in tools/shardmq.example.toml)");
  EXPECT_EQ(Error("max-packet-size = 100\n"),
            "FILE:1: max-packet-size: unknown key (keys use underscores: max_packet_size)");
  EXPECT_EQ(Error("listen = [\"127.0.0.1:1883\"]\n"),
            "FILE:1: listen: unknown key (write listeners as [[listener]] tables)");
  EXPECT_EQ(Error("config = \"other.toml\"\n"), "FILE:1: config: cannot be set in a config file");
  EXPECT_THAT(Error("[limits]\nmax_packet_size = 100\n"), StartsWith("FILE:"));
  EXPECT_THAT(Error("[limits]\nmax_packet_size = 100\n"), HasSubstr(": limits: unknown key"));
}

TEST_F(ConfigFileTest, WrongType) {
  EXPECT_EQ(Error("\nmax_packet_size = \"big\"\n"),
            "FILE:2: max_packet_size: must be an integer, not a string");
  EXPECT_EQ(Error("queue_qos0_offline = 1\n"),
            "FILE:1: queue_qos0_offline: must be true or false, not an integer");
  EXPECT_EQ(Error("log_level = 3\n"), "FILE:1: log_level: must be a string, not an integer");
  EXPECT_EQ(Error("deny_subscribe = \"a/b\"\n"),
            "FILE:1: deny_subscribe: must be an array of strings, not a string");
  EXPECT_EQ(Error("deny_subscribe = [\"a\",\n  2]\n"),
            "FILE:2: deny_subscribe: must be a string, not an integer");
  EXPECT_EQ(Error("max_packet_size = 1.5\n"),
            "FILE:1: max_packet_size: must be an integer, not a floating-point number");
  EXPECT_EQ(Error("allow_anonymous = 1\n"),
            "FILE:1: allow_anonymous: must be true, false or \"auto\", not an integer");
}

TEST_F(ConfigFileTest, BadValueUsesTheFlagsValidation) {
  EXPECT_EQ(Error("max_packet_size = 10\n"),
            "FILE:1: max_packet_size = 10: must be between 64 and 268435460");
  EXPECT_EQ(Error("\n\nlog_level = \"loud\"\n"),
            "FILE:3: log_level = loud: must be debug, info, warning or error");
  EXPECT_EQ(Error("max_connections = 0\n"), "FILE:1: max_connections = 0: must be at least 1");
  EXPECT_EQ(Error("shards = 5000\n"), "FILE:1: shards = 5000: must be between 0 and 1024");
  EXPECT_EQ(Error("max_inflight = -1\n"),
            "FILE:1: max_inflight: -1 is out of range for this key (it cannot be negative)");
  EXPECT_EQ(Error("max_inflight = 5000000000\n"),
            "FILE:1: max_inflight: 5000000000 is out of range for this key");
  EXPECT_EQ(Error("redirect = \"away\"\n"),
            "FILE:1: redirect = away: must be none, moved or use-another");
  EXPECT_EQ(Error("tls_cert = \"cert.pem\"\n"),
            "FILE:1: tls_cert = cert.pem: has no effect without a tls:// --listen or an "
            "https:// --http-listen");
}

TEST_F(ConfigFileTest, BadListener) {
  EXPECT_THAT(Error("[[listener]]\naddress = \"1.2.3:80\"\n"),
              StartsWith("FILE:2: listener.address = 1.2.3:80: \"1.2.3:80\": \"1.2.3\" is "
                         "not an IPv4 or IPv6"));
  EXPECT_EQ(Error("[[listener]]\naddress = \"127.0.0.1:1883\"\nprotocol = \"quic\"\n"),
            "FILE:3: listener.protocol: \"quic\" is not a protocol this broker serves (tcp or tls "
            "or ws or wss or unix)");
  EXPECT_EQ(Error("[[listener]]\naddress = \"127.0.0.1:1883\"\nport = 1883\n"),
            "FILE:3: listener.port: unknown key (a listener has address, protocol, "
            "max_connections, proxy_protocol; path for ws, wss and unix; mode and owner for unix)");
  EXPECT_EQ(Error("[[listener]]\naddress = \"127.0.0.1:1883\"\npath = \"mqtt\"\n"),
            "FILE:3: listener.path: must start with /");
  EXPECT_EQ(Error("[[listener]]\naddress = \"tls://127.0.0.1:1883\"\n"),
            "FILE:2: listener.address: \"tls://127.0.0.1:1883\": give host:port here and the "
            "scheme as protocol");
  EXPECT_EQ(Error("[[listener]]\naddress = 1883\n"),
            "FILE:2: listener.address: must be a string, not an integer");
  EXPECT_THAT(Error("[[listener]]\nprotocol = \"tcp\"\n"),
              HasSubstr(": listener: needs an address = \"host:port\""));
  EXPECT_THAT(Error("[listener]\naddress = \"127.0.0.1:1883\"\n"),
              HasSubstr(": listener: must be an array of tables: write [[listener]], not a table"));
}

TEST_F(ConfigFileTest, SyntaxErrorAndMissingFile) {
  EXPECT_THAT(Error("log_level = \"info\"\nmax_packet_size 100\n"),
              StartsWith("FILE:2: syntax error: "));
  EXPECT_THAT(Error("log_level = \"info\"\nlog_level = \"debug\"\n"),
              StartsWith("FILE:2: syntax error: "));
  // An array left open: the line where a `,` or `]` was due.
  EXPECT_EQ(Error("deny_subscribe = [\"a\"\n"),
            "FILE:2: syntax error: missing array separator `,` after a value");
  EXPECT_EQ(Error("log_level = \"info\"\nmax_packet_size 100\n"),
            "FILE:2: syntax error: missing key-value separator `=`");
  absl::StatusOr<DaemonConfig> missing = Parse({"--config=/nonexistent/shardmq.toml"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(),
            "/nonexistent/shardmq.toml: cannot read the config file: No such file or directory");
  absl::StatusOr<DaemonConfig> directory = Parse({"--config=" + ::testing::TempDir()});
  ASSERT_FALSE(directory.ok());
  EXPECT_THAT(directory.status().message(),
              HasSubstr("cannot read the config file: it is a directory"));
}

// The example documents every flag with its default: a flag added without
// its key, a key that is no flag, or a default that moved fails here.
TEST(ExampleConfigTest, NamesEveryFlagWithItsDefault) {
  absl::StatusOr<std::vector<ConfigSetting>> settings =
      LoadConfigFile(SHARDMQ_EXAMPLE_CONFIG, ConfigurableFlags());
  ASSERT_TRUE(settings.ok()) << settings.status();
  std::set<std::string> named;
  for (const ConfigSetting& setting : *settings) {
    named.insert(setting.flag);
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(setting.flag);
    ASSERT_NE(flag, nullptr) << setting.where;
    EXPECT_EQ(setting.value, flag->DefaultValue()) << setting.where;
  }
  for (std::string_view flag : ConfigurableFlags()) {
    EXPECT_TRUE(named.count(std::string(flag))) << flag << " is not in the example config";
  }

  // And it starts the daemon exactly as no configuration does.
  absl::StatusOr<DaemonConfig> defaults = Parse({});
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  absl::StatusOr<DaemonConfig> example = Parse({"--config=" SHARDMQ_EXAMPLE_CONFIG});
  ASSERT_TRUE(example.ok()) << example.status();
  ASSERT_EQ(example->flag_values.size(), defaults->flag_values.size());
  for (size_t i = 0; i < example->flag_values.size(); ++i) {
    if (example->flag_values[i].first == "config") continue;
    EXPECT_EQ(example->flag_values[i], defaults->flag_values[i]);
  }
}

}  // namespace
}  // namespace shardmq::daemon
