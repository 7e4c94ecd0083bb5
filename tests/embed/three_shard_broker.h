// A test fixture: a Broker on three shards listening on a free loopback port,
// closed after each test, and a way to connect TestClients to it. Three
// shards so that connections land on, and move between, several shards.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "gtest/gtest.h"
#include "shardmq/broker.h"
#include "test_client.h"

namespace shardmq::testing {

class ThreeShardBroker : public ::testing::Test {
 protected:
  void Start(Options options) {
    options.shards = 3;
    options.listeners = {"127.0.0.1:0"};
    auto broker = Broker::Create(options);
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = *std::move(broker);
    ASSERT_TRUE(broker_->Start().ok());
    const std::string address = broker_->BoundAddresses().at(0);
    port_ = static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
  }
  void TearDown() override {
    if (broker_ != nullptr) {
      broker_->Close();
      broker_->Wait();
    }
  }
  // A client connected from `source` that got CONNACK 0, or nullptr.
  std::unique_ptr<TestClient> TryConnect(
      const std::string& id, const char* source = nullptr,
      mqtt::ProtocolVersion version = mqtt::ProtocolVersion::kV5) {
    auto client = std::make_unique<TestClient>(version);
    if (!client->Open(port_, source)) return nullptr;
    if (client->Connect(id) != std::optional<uint8_t>(0)) return nullptr;
    return client;
  }

  std::unique_ptr<Broker> broker_;
  uint16_t port_ = 0;
};

}  // namespace shardmq::testing
