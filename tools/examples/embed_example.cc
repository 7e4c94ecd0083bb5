// embed_example: shardmq inside another program. It starts a broker with a
// hook that only lets "demo" users in and stamps every message, subscribes
// and publishes through an InlineClient, prints what arrives, and stops.
// Run as a test (meson test embed_example); also the README's example.
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>

#include "shardmq/broker.h"

namespace {

class DemoHooks : public shardmq::Hooks {
 public:
  shardmq::AuthDecision OnAuthenticate(const shardmq::ConnectRequest& request) override {
    // Runs on a shard thread: decide from memory, never block.
    if (request.client.username == "demo") return shardmq::AuthDecision::Allow();
    return shardmq::AuthDecision::Deny(0x86);  // bad user name or password
  }
  shardmq::MessageVerdict OnMessageArrived(const shardmq::ClientInfo& publisher,
                                           shardmq::ArrivedMessage& message) override {
    message.new_user_properties.emplace();
    message.new_user_properties->emplace_back("via", std::string(publisher.client_id));
    return shardmq::MessageVerdict::Accept();
  }
};

}  // namespace

int main() {
  shardmq::Options options;
  options.shards = 2;
  options.listeners = {"127.0.0.1:0"};  // MQTT clients may connect here too
  options.hooks.push_back(std::make_shared<DemoHooks>());
  auto broker = shardmq::Broker::Create(options);
  if (!broker.ok()) {
    std::fprintf(stderr, "%s\n", std::string(broker.status().message()).c_str());
    return 1;
  }
  if (absl::Status started = (*broker)->Start(); !started.ok()) {
    std::fprintf(stderr, "%s\n", std::string(started.message()).c_str());
    return 1;
  }

  auto client = (*broker)->NewInlineClient("example");
  if (!client.ok()) return 1;
  std::mutex mutex;
  std::condition_variable arrived;
  std::string received;
  // The callback runs on the client id's home shard thread.
  auto granted = (*client)->Subscribe("greetings/#", 1, [&](const shardmq::InlineMessage& m) {
    std::lock_guard<std::mutex> lock(mutex);
    received = std::string(m.topic) + " " + std::string(m.payload);
    for (const auto& [name, value] : m.user_properties) {
      received += " " + std::string(name) + "=" + std::string(value);
    }
    arrived.notify_one();
  });
  if (!granted.ok()) return 1;
  if (!(*client)->Publish("greetings/world", "hello", /*qos=*/1).ok()) return 1;

  std::unique_lock<std::mutex> lock(mutex);
  if (!arrived.wait_for(lock, std::chrono::seconds(5), [&] { return !received.empty(); })) {
    std::fprintf(stderr, "nothing arrived\n");
    return 1;
  }
  std::printf("received: %s\n", received.c_str());
  lock.unlock();
  client->reset();  // inline clients go before the broker
  (*broker)->Close();
  (*broker)->Wait();
  return received == "greetings/world hello via=example" ? 0 : 1;
}
