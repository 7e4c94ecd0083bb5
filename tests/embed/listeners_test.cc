// Listener kinds and per-listener options through the embedding API:
// unix-domain sockets (served like TCP, socket file mode, stale file
// replaced, live or foreign file refused, file removed on stop, unknown
// owner refused) and max_connections on one listener. Each test asserts on
// what clients see, on the file system and on Broker::Stats().
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shardmq/broker.h"
#include "temp_dir.h"
#include "test_client.h"

namespace shardmq {
namespace {

using mqtt::PacketType;
using mqtt::ProtocolVersion;
using ::testing::HasSubstr;
using testing::TempDir;
using testing::TestClient;

bool Exists(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0;
}

// A unix socket bound at `path`, listening or not; closing it leaves the
// file behind, as a crashed process does.
int BindUnix(const std::string& path, bool listening) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return -1;
  if (listening && listen(fd, 4) != 0) return -1;
  return fd;
}

uint16_t PortOf(const std::string& bound) {
  return static_cast<uint16_t>(std::stoi(bound.substr(bound.rfind(':') + 1)));
}

class ListenersTest : public ::testing::Test {
 protected:
  absl::Status Start(std::vector<std::string> listeners) {
    Options options;
    options.shards = 3;  // unix connections too must reach every shard
    options.listeners = std::move(listeners);
    auto broker = Broker::Create(options);
    if (!broker.ok()) return broker.status();
    broker_ = *std::move(broker);
    return broker_->Start();
  }
  void Stop() {
    if (broker_ != nullptr) {
      broker_->Close();
      broker_->Wait();
      broker_.reset();
    }
  }
  void TearDown() override { Stop(); }

  std::unique_ptr<TestClient> ConnectUnix(const std::string& path, const std::string& id) {
    auto client = std::make_unique<TestClient>(ProtocolVersion::kV5);
    if (!client->OpenUnix(path)) return nullptr;
    if (client->Connect(id) != std::optional<uint8_t>(0)) return nullptr;
    return client;
  }
  std::unique_ptr<TestClient> ConnectTcp(uint16_t port, const std::string& id) {
    auto client = std::make_unique<TestClient>(ProtocolVersion::kV5);
    if (!client->Open(port)) return nullptr;
    if (client->Connect(id) != std::optional<uint8_t>(0)) return nullptr;
    return client;
  }
  template <typename Pred>
  BrokerStats WaitForStats(Pred done) {
    BrokerStats stats = broker_->Stats();
    for (int i = 0; i < 300 && !done(stats); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      stats = broker_->Stats();
    }
    return stats;
  }

  TempDir dir_;
  std::unique_ptr<Broker> broker_;
};

TEST_F(ListenersTest, UnixSocketServesMqttBesideTcp) {
  const std::string path = dir_.File("mqtt.sock");
  ASSERT_TRUE(Start({"127.0.0.1:0", "unix://" + path + "?mode=0600"}).ok());
  ASSERT_EQ(broker_->BoundAddresses().size(), 2u);
  EXPECT_EQ(broker_->BoundAddresses()[1], "unix:" + path);
  struct stat st {};
  ASSERT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);

  const uint16_t port = PortOf(broker_->BoundAddresses()[0]);
  auto tcp = ConnectTcp(port, "tcp-client");
  ASSERT_NE(tcp, nullptr);
  // Several unix clients, so that more than one shard accepts and they
  // move to their home shards.
  std::vector<std::unique_ptr<TestClient>> local;
  for (int i = 0; i < 6; ++i) {
    local.push_back(ConnectUnix(path, "unix-" + std::to_string(i)));
    ASSERT_NE(local.back(), nullptr) << i;
  }
  ASSERT_TRUE(tcp->Subscribe("from/unix", 1).has_value());
  ASSERT_TRUE(local[3]->Subscribe("from/tcp", 1).has_value());
  ASSERT_TRUE(local[5]->Publish("from/unix", "over unix", 1).has_value());
  ASSERT_TRUE(tcp->Publish("from/tcp", "over tcp", 1).has_value());
  auto at_tcp = tcp->NextOf(PacketType::kPublish);
  ASSERT_TRUE(at_tcp.has_value());
  EXPECT_EQ(at_tcp->payload, "over unix");
  auto at_unix = local[3]->NextOf(PacketType::kPublish);
  ASSERT_TRUE(at_unix.has_value());
  EXPECT_EQ(at_unix->payload, "over tcp");
  // The clients API names unix peers "unix".
  auto clients = broker_->Clients(absl::Seconds(5), "unix-3");
  ASSERT_TRUE(clients.ok()) << clients.status();
  ASSERT_EQ(clients->size(), 1u);
  EXPECT_EQ(clients->front().address, "unix");

  Stop();
  EXPECT_FALSE(Exists(path)) << "the socket file outlived the broker";
}

TEST_F(ListenersTest, StaleSocketFileIsReplaced) {
  const std::string path = dir_.File("stale.sock");
  const int crashed = BindUnix(path, /*listening=*/false);
  ASSERT_GE(crashed, 0);
  close(crashed);
  ASSERT_TRUE(Exists(path));
  ASSERT_TRUE(Start({"unix://" + path}).ok());
  EXPECT_NE(ConnectUnix(path, "after-crash"), nullptr);
}

TEST_F(ListenersTest, SocketSomethingAcceptsOnIsRefused) {
  const std::string path = dir_.File("live.sock");
  const int other = BindUnix(path, /*listening=*/true);
  ASSERT_GE(other, 0);
  absl::Status started = Start({"unix://" + path});
  EXPECT_FALSE(started.ok());
  EXPECT_THAT(started.message(), HasSubstr("another process accepts connections on " + path));
  // The other process's socket is left alone.
  EXPECT_TRUE(Exists(path));
  Stop();
  EXPECT_TRUE(Exists(path));
  close(other);
}

TEST_F(ListenersTest, PathThatIsNotASocketIsRefused) {
  const std::string path = dir_.File("data.txt");
  std::ofstream(path) << "precious";
  absl::Status started = Start({"127.0.0.1:0", "unix://" + path});
  EXPECT_FALSE(started.ok());
  EXPECT_THAT(started.message(), HasSubstr(path + " exists and is not a socket"));
  Stop();
  std::ifstream in(path);
  std::string kept;
  in >> kept;
  EXPECT_EQ(kept, "precious");
}

TEST_F(ListenersTest, UnknownOwnerStopsCreate) {
  const std::string path = dir_.File("owned.sock");
  const std::string listener = "unix://" + path + "?owner=no_such_user_shardmq";
  absl::Status started = Start({listener});
  EXPECT_FALSE(started.ok());
  EXPECT_THAT(started.message(), HasSubstr(listener));
  EXPECT_THAT(started.message(), HasSubstr("no user \"no_such_user_shardmq\""));
  EXPECT_FALSE(Exists(path));
  started = Start({"unix://" + path + "?owner=root:no_such_group_shardmq"});
  EXPECT_THAT(started.message(), HasSubstr("no group \"no_such_group_shardmq\""));
}

TEST_F(ListenersTest, MaxConnectionsBoundsOneListenerOnly) {
  const std::string path = dir_.File("bounded.sock");
  ASSERT_TRUE(Start({"127.0.0.1:0?max_connections=2", "127.0.0.1:0",
                     "unix://" + path + "?max_connections=1"})
                  .ok());
  const uint16_t bounded = PortOf(broker_->BoundAddresses()[0]);
  const uint16_t free = PortOf(broker_->BoundAddresses()[1]);
  auto first = ConnectTcp(bounded, "a");
  auto second = ConnectTcp(bounded, "b");
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  // The third on that listener is closed before it can say anything...
  auto third = std::make_unique<TestClient>(ProtocolVersion::kV5);
  ASSERT_TRUE(third->Open(bounded));
  EXPECT_EQ(third->Connect("c"), std::nullopt);
  EXPECT_TRUE(third->WaitClosed());
  EXPECT_EQ(broker_->Stats().refused_listener_max_connections, 1u);
  EXPECT_EQ(broker_->Stats().refused_max_connections, 0u);
  // ...while the other listeners have their own count.
  auto elsewhere = ConnectTcp(free, "d");
  ASSERT_NE(elsewhere, nullptr);
  auto local = ConnectUnix(path, "e");
  ASSERT_NE(local, nullptr);
  auto local_too_many = std::make_unique<TestClient>(ProtocolVersion::kV5);
  ASSERT_TRUE(local_too_many->OpenUnix(path));
  EXPECT_EQ(local_too_many->Connect("f"), std::nullopt);
  EXPECT_EQ(broker_->Stats().refused_listener_max_connections, 2u);
  // A closed connection frees its place, on whichever shard it ended.
  second->Disconnect();
  EXPECT_TRUE(second->WaitClosed());
  WaitForStats([](const BrokerStats& s) { return s.connections_open == 3; });
  EXPECT_NE(ConnectTcp(bounded, "g"), nullptr);
}

}  // namespace
}  // namespace shardmq
