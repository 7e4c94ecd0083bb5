// Every hook of shardmq/hooks.h through the public embedding API: a Broker on
// 127.0.0.1:0 with hooks registered, driven by raw MQTT clients (3.1.1 and
// 5.0) and by InlineClient. Each test asserts on what a client sees and on
// the arguments the hooks got.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "gtest/gtest.h"
#include "placement.h"
#include "shardmq/broker.h"
#include "test_client.h"

namespace shardmq {
namespace {

// absl::StrCat takes absl::string_view, which is not std::string_view in
// this abseil; a small joiner instead (integers as numbers, not chars).
template <typename T>
std::string Piece(const T& value) {
  if constexpr (std::is_same_v<T, bool>) {
    return value ? "1" : "0";
  } else if constexpr (std::is_integral_v<T>) {
    return std::to_string(static_cast<long long>(value));
  } else {
    return std::string(value);
  }
}
template <typename... Args>
std::string Cat(const Args&... args) {
  return (std::string() + ... + Piece(args));
}

using mqtt::PacketType;
using mqtt::ProtocolVersion;
using testing::Received;
using testing::TestClient;

// Records every call as one line ("auth alice/secret/c1/4"); the decisions
// come from the std::function members, set per test.
class Recorder : public Hooks {
 public:
  std::function<Decision(std::string_view)> accept;
  std::function<AuthDecision(const ConnectRequest&)> authenticate;
  std::function<Decision(const ClientInfo&, std::string_view, uint8_t)> publish_check;
  std::function<MessageVerdict(ArrivedMessage&)> arrived;
  std::function<Decision(SubscribeRequest&)> subscribe;
  std::function<Decision(std::string_view)> unsubscribe;
  std::function<Decision(const ClientInfo&, const MessageView&)> deliver_check;

  Decision OnAccept(std::string_view address, int shard) override {
    Log(Cat("accept ", address.substr(0, 9), " ", shard >= 0));
    return accept ? accept(address) : Decision::NoOpinion();
  }
  AuthDecision OnAuthenticate(const ConnectRequest& r) override {
    Log(Cat("auth ", r.client.username.value_or("-"), "/", r.password.value_or("-"), "/",
            r.client.client_id, "/", r.client.protocol_version));
    return authenticate ? authenticate(r) : AuthDecision::NoOpinion();
  }
  void OnSessionEstablished(const ClientInfo& c) override {
    Log(Cat("established ", c.client_id, " ", c.username.value_or("-")));
  }
  void OnSessionResumed(const ClientInfo& c) override { Log(Cat("resumed ", c.client_id)); }
  void OnSessionTerminated(const ClientInfo& c, SessionEndReason why) override {
    Log(Cat("terminated ", c.client_id, " ", ToString(why)));
  }
  void OnClientDisconnected(const ClientInfo& c, DisconnectReason why) override {
    Log(Cat("disconnected ", c.client_id, " ", ToString(why)));
  }
  Decision OnPublishCheck(const ClientInfo& c, std::string_view topic, uint8_t qos,
                          bool retain) override {
    Log(Cat("publish-check ", c.client_id, " ", topic, " ", qos, " ", retain));
    return publish_check ? publish_check(c, topic, qos) : Decision::NoOpinion();
  }
  MessageVerdict OnMessageArrived(const ClientInfo& c, ArrivedMessage& m) override {
    Log(Cat("arrived ", c.client_id, " ", m.message.topic, " ", m.message.payload,
            c.inline_client ? " inline" : ""));
    return arrived ? arrived(m) : MessageVerdict::Accept();
  }
  Decision OnSubscribe(const ClientInfo& c, SubscribeRequest& r) override {
    Log(Cat("subscribe ", c.client_id, " ", r.filter, " ", r.qos, " ", r.subscription_count, " ",
            r.shared));
    return subscribe ? subscribe(r) : Decision::NoOpinion();
  }
  void OnSubscribed(const ClientInfo& c, std::string_view filter, uint8_t qos) override {
    Log(Cat("subscribed ", c.client_id, " ", filter, " ", qos));
  }
  Decision OnUnsubscribe(const ClientInfo& c, std::string_view filter) override {
    Log(Cat("unsubscribe ", c.client_id, " ", filter));
    return unsubscribe ? unsubscribe(filter) : Decision::NoOpinion();
  }
  void OnUnsubscribed(const ClientInfo& c, std::string_view filter, bool existed) override {
    Log(Cat("unsubscribed ", c.client_id, " ", filter, " ", existed));
  }
  Decision OnDeliverCheck(const ClientInfo& c, const MessageView& m) override {
    return deliver_check ? deliver_check(c, m) : Decision::NoOpinion();
  }
  void OnMessageDelivered(const ClientInfo& c, const MessageView& m, uint8_t qos) override {
    Log(Cat("delivered ", c.client_id, " ", m.topic, " ", m.payload, " ", qos));
  }
  void OnMessageDropped(std::string_view id, const MessageView& m, DropReason why) override {
    Log(Cat("dropped ", id.empty() ? "-" : id, " ", m.topic, " ", ToString(why)));
  }
  void OnWillSent(std::string_view id, const MessageView& will) override {
    Log(Cat("will ", id, " ", will.topic, " ", will.payload));
  }
  void OnBrokerStarted() override { Log("started"); }
  void OnBrokerStopping() override { Log("stopping"); }

  // Waits until a line starting with `prefix` was logged; returns it.
  std::string WaitFor(std::string_view prefix, int timeout_ms = 3000) {
    std::unique_lock<std::mutex> lock(mutex_);
    std::string found;
    cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
      for (const std::string& line : log_) {
        if (line.rfind(prefix, 0) == 0) {
          found = line;
          return true;
        }
      }
      return false;
    });
    return found;
  }
  bool Saw(std::string_view prefix) {
    std::lock_guard<std::mutex> lock(mutex_);
    return std::any_of(log_.begin(), log_.end(),
                       [&](const std::string& l) { return l.rfind(prefix, 0) == 0; });
  }
  std::vector<std::string> Log() {
    std::lock_guard<std::mutex> lock(mutex_);
    return log_;
  }

 private:
  void Log(std::string line) {
    std::lock_guard<std::mutex> lock(mutex_);
    log_.push_back(std::move(line));
    cv_.notify_all();
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::string> log_;
};

class HooksTest : public ::testing::TestWithParam<ProtocolVersion> {
 protected:
  void Start(int shards = 2) {
    Options options;
    options.shards = shards;
    options.listeners = {"127.0.0.1:0"};
    options.hooks.push_back(hooks_);
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
  std::unique_ptr<TestClient> Client(ProtocolVersion version) {
    auto client = std::make_unique<TestClient>(version);
    EXPECT_TRUE(client->Open(port_));
    return client;
  }
  std::unique_ptr<TestClient> Connected(std::string_view id, ProtocolVersion version) {
    auto client = Client(version);
    EXPECT_EQ(client->Connect(id), 0) << id;
    return client;
  }
  ProtocolVersion version() const { return GetParam(); }
  bool v5() const { return GetParam() == ProtocolVersion::kV5; }

  std::shared_ptr<Recorder> hooks_ = std::make_shared<Recorder>();
  std::unique_ptr<Broker> broker_;
  uint16_t port_ = 0;
};

INSTANTIATE_TEST_SUITE_P(Versions, HooksTest,
                         ::testing::Values(ProtocolVersion::kV311, ProtocolVersion::kV5),
                         [](const auto& info) {
                           return info.param == ProtocolVersion::kV5 ? "v5" : "v311";
                         });

TEST_P(HooksTest, AcceptRefusedClosesTheSocketWithoutAnswer) {
  hooks_->accept = [](std::string_view) { return Decision::Deny(); };
  Start();
  EXPECT_EQ(hooks_->WaitFor("started"), "started");
  auto client = Client(version());
  EXPECT_EQ(client->Connect("c1"), std::nullopt);
  EXPECT_TRUE(client->WaitClosed());
  EXPECT_EQ(hooks_->WaitFor("accept"), "accept 127.0.0.1 1");
  EXPECT_FALSE(hooks_->Saw("auth"));
}

TEST_P(HooksTest, AuthenticateSeesCredentialsAndRefusesWithTheVersionsCode) {
  hooks_->authenticate = [](const ConnectRequest& r) {
    if (r.client.username == "alice" && r.password == "secret") return AuthDecision::Allow();
    if (r.client.username == "mallory") return AuthDecision::Deny(0x8A);  // banned
    return AuthDecision::Deny(0x86);
  };
  Start();
  auto good = Client(version());
  EXPECT_EQ(good->Connect("c1", "alice", "secret"), 0);
  EXPECT_EQ(hooks_->WaitFor("auth alice"),
            Cat("auth alice/secret/c1/", static_cast<int>(version())));
  EXPECT_EQ(hooks_->WaitFor("established c1"), "established c1 alice");

  auto bad = Client(version());
  EXPECT_EQ(bad->Connect("c2", "alice", "wrong"), v5() ? 0x86 : 0x04);
  EXPECT_TRUE(bad->WaitClosed());
  auto banned = Client(version());
  EXPECT_EQ(banned->Connect("c3", "mallory", "x"), v5() ? 0x8A : 0x05);
  EXPECT_TRUE(banned->WaitClosed());
  EXPECT_FALSE(hooks_->Saw("established c2"));
}

TEST_P(HooksTest, SessionLifecycleAndDisconnectReasons) {
  Start();
  {
    auto client = Connected("s1", version());
    client->Disconnect();
    EXPECT_EQ(hooks_->WaitFor("disconnected s1"), "disconnected s1 client disconnected");
    EXPECT_EQ(hooks_->WaitFor("terminated s1"), "terminated s1 closed");
  }
  {
    // A persistent session, lost connection, then resumed.
    auto client = Client(version());
    EXPECT_EQ(client->Connect("s2", std::nullopt, std::nullopt, /*clean_start=*/false, std::nullopt,
                              /*session_expiry=*/600),
              0);
  }  // socket closed without DISCONNECT
  EXPECT_EQ(hooks_->WaitFor("disconnected s2"), "disconnected s2 connection lost");
  EXPECT_FALSE(hooks_->Saw("terminated s2"));
  auto again = Client(version());
  EXPECT_EQ(again->Connect("s2", std::nullopt, std::nullopt, false, std::nullopt, 600), 0);
  EXPECT_TRUE(again->session_present());
  EXPECT_EQ(hooks_->WaitFor("resumed s2"), "resumed s2");
  // Taken over by a clean session: the old connection ends, then the session.
  auto thief = Connected("s2", version());
  EXPECT_EQ(hooks_->WaitFor("disconnected s2 session"), "disconnected s2 session taken over");
  EXPECT_EQ(hooks_->WaitFor("terminated s2"), "terminated s2 clean start");
}

// Session expiry exists only in MQTT 5 (a 3.1.1 persistent session never
// expires), so this suite runs for 5.0 alone.
class HooksV5Test : public HooksTest {};
INSTANTIATE_TEST_SUITE_P(V5, HooksV5Test, ::testing::Values(ProtocolVersion::kV5),
                         [](const auto&) { return "v5"; });

TEST_P(HooksV5Test, ExpiredSessionIsTerminated) {
  Start();
  {
    auto client = Client(ProtocolVersion::kV5);
    EXPECT_EQ(client->Connect("e1", std::nullopt, std::nullopt, false, std::nullopt,
                              /*session_expiry=*/1),
              0);
    client->Disconnect();
  }
  EXPECT_EQ(hooks_->WaitFor("disconnected e1"), "disconnected e1 client disconnected");
  EXPECT_EQ(hooks_->WaitFor("terminated e1", 5000), "terminated e1 expired");
}

TEST_P(HooksTest, PublishAclRefusalIsAnsweredAsTheVersionAllows) {
  hooks_->publish_check = [](const ClientInfo&, std::string_view topic, uint8_t) {
    return topic.starts_with("secret/") ? Decision::Deny() : Decision::NoOpinion();
  };
  Start();
  auto sub = Connected("sub", version());
  ASSERT_TRUE(sub->Subscribe("#", 2));
  auto pub = Connected("pub", version());
  auto ack1 = pub->Publish("secret/a", "x", 1);
  ASSERT_TRUE(ack1);
  EXPECT_EQ(ack1->type, PacketType::kPuback);
  // 3.1.1 cannot be told: acknowledged as accepted, and dropped.
  EXPECT_EQ(ack1->code, v5() ? 0x87 : 0x00);
  auto ack2 = pub->Publish("secret/b", "y", 2, false, 11);
  ASSERT_TRUE(ack2);
  EXPECT_EQ(ack2->type, PacketType::kPubrec);
  EXPECT_EQ(ack2->code, v5() ? 0x87 : 0x00);
  EXPECT_EQ(hooks_->WaitFor("publish-check pub secret/a"), "publish-check pub secret/a 1 0");
  EXPECT_EQ(hooks_->WaitFor("dropped pub secret/a"), "dropped pub secret/a publish not allowed");
  // Allowed topics still flow, and nothing refused arrived before them.
  ASSERT_TRUE(pub->Publish("open/a", "z", 1, false, 12));
  auto got = sub->NextOf(PacketType::kPublish);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->topic, "open/a");
}

TEST_P(HooksTest, WillToAForbiddenTopicRefusesTheConnect) {
  hooks_->publish_check = [](const ClientInfo&, std::string_view topic, uint8_t) {
    return topic.starts_with("secret/") ? Decision::Deny() : Decision::NoOpinion();
  };
  Start();
  mqtt::Will will;
  will.topic = "secret/will";
  auto client = Client(version());
  EXPECT_EQ(client->Connect("w1", std::nullopt, std::nullopt, true, will), v5() ? 0x87 : 0x05);
  EXPECT_TRUE(client->WaitClosed());
  EXPECT_EQ(hooks_->WaitFor("publish-check w1"), "publish-check w1 secret/will 0 0");
  will.topic = "open/will";
  auto allowed = Client(version());
  EXPECT_EQ(allowed->Connect("w2", std::nullopt, std::nullopt, true, will), 0);
}

TEST_P(HooksTest, SubscribeAclRefusesAndDowngrades) {
  hooks_->subscribe = [](SubscribeRequest& r) {
    if (r.filter.starts_with("secret")) return Decision::Deny();
    if (r.filter.starts_with("slow/")) r.qos = 0;
    return Decision::NoOpinion();
  };
  Start();
  auto client = Connected("c1", version());
  auto refused = client->Subscribe("secret/#", 1);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->codes, std::vector<uint8_t>{static_cast<uint8_t>(v5() ? 0x87 : 0x80)});
  auto downgraded = client->Subscribe("slow/+", 2, 3);
  ASSERT_TRUE(downgraded);
  EXPECT_EQ(downgraded->codes, std::vector<uint8_t>{0});
  auto granted = client->Subscribe("$share/g/fast/#", 2, 4);
  ASSERT_TRUE(granted);
  EXPECT_EQ(granted->codes, std::vector<uint8_t>{2});
  EXPECT_EQ(hooks_->WaitFor("subscribe c1 secret"), "subscribe c1 secret/# 1 0 0");
  EXPECT_EQ(hooks_->WaitFor("subscribe c1 $share"), "subscribe c1 $share/g/fast/# 2 1 1");
  EXPECT_EQ(hooks_->WaitFor("subscribed c1 slow"), "subscribed c1 slow/+ 0");
  EXPECT_FALSE(hooks_->Saw("subscribed c1 secret"));
}

TEST_P(HooksTest, UnsubscribeHooks) {
  hooks_->unsubscribe = [](std::string_view filter) {
    return filter == "keep" ? Decision::Deny() : Decision::NoOpinion();
  };
  Start();
  auto client = Connected("c1", version());
  ASSERT_TRUE(client->Subscribe("keep", 0));
  ASSERT_TRUE(client->Subscribe("drop", 0, 3));
  auto kept = client->Unsubscribe("keep", 4);
  ASSERT_TRUE(kept);
  if (v5()) {
    EXPECT_EQ(kept->codes, std::vector<uint8_t>{0x87});
  }
  auto dropped = client->Unsubscribe("drop", 5);
  ASSERT_TRUE(dropped);
  if (v5()) {
    EXPECT_EQ(dropped->codes, std::vector<uint8_t>{0x00});
  }
  EXPECT_EQ(hooks_->WaitFor("unsubscribed c1 drop"), "unsubscribed c1 drop 1");
  EXPECT_FALSE(hooks_->Saw("unsubscribed c1 keep"));
  // The refused one still delivers.
  auto pub = Connected("p", version());
  pub->Publish("keep", "still", 0);
  auto got = client->NextOf(PacketType::kPublish);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->payload, "still");
}

TEST_P(HooksTest, MessageArrivedRewritesDropsAndRejects) {
  hooks_->arrived = [](ArrivedMessage& m) {
    if (m.message.topic == "drop") return MessageVerdict::Drop();
    if (m.message.topic == "reject") return MessageVerdict::Reject(0x97);
    if (m.message.topic == "raw/in") {
      m.new_topic = "cooked/out";
      m.new_payload = Cat("<", m.message.payload, ">");
      m.new_user_properties.emplace();
      m.new_user_properties->emplace_back("cooked", "yes");
    }
    return MessageVerdict::Accept();
  };
  Start();
  auto sub = Connected("sub", ProtocolVersion::kV5);
  ASSERT_TRUE(sub->Subscribe("#", 1));
  auto pub = Connected("pub", version());
  auto ack = pub->Publish("raw/in", "x", 1);
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->code, 0);
  auto got = sub->NextOf(PacketType::kPublish);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->topic, "cooked/out");
  EXPECT_EQ(got->payload, "<x>");
  EXPECT_EQ(got->user_properties,
            (std::vector<std::pair<std::string, std::string>>{{"cooked", "yes"}}));
  auto dropped = pub->Publish("drop", "d", 1, false, 11);
  ASSERT_TRUE(dropped);
  EXPECT_EQ(dropped->code, 0);  // acknowledged as if delivered
  auto rejected = pub->Publish("reject", "r", 1, false, 12);
  ASSERT_TRUE(rejected);
  EXPECT_EQ(rejected->code, v5() ? 0x97 : 0x00);
  pub->Publish("after", "a", 0);
  auto next = sub->NextOf(PacketType::kPublish);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->topic, "after");  // neither "drop" nor "reject" got through
  EXPECT_EQ(hooks_->WaitFor("dropped pub drop"), "dropped pub drop rejected by a hook");
}

TEST_P(HooksTest, DeliverCheckDeliveredAndDropped) {
  hooks_->deliver_check = [](const ClientInfo& c, const MessageView& m) {
    return c.client_id == "nosy" && m.topic == "private" ? Decision::Deny() : Decision::NoOpinion();
  };
  Start();
  auto nosy = Connected("nosy", version());
  auto friendly = Connected("friendly", version());
  ASSERT_TRUE(nosy->Subscribe("+", 1));
  ASSERT_TRUE(friendly->Subscribe("+", 1));
  auto pub = Connected("pub", version());
  ASSERT_TRUE(pub->Publish("private", "p", 1));
  ASSERT_TRUE(pub->Publish("public", "q", 1, false, 11));
  auto f1 = friendly->NextOf(PacketType::kPublish);
  ASSERT_TRUE(f1);
  EXPECT_EQ(f1->topic, "private");
  auto n1 = nosy->NextOf(PacketType::kPublish);
  ASSERT_TRUE(n1);
  EXPECT_EQ(n1->topic, "public");  // "private" never came
  EXPECT_EQ(hooks_->WaitFor("dropped nosy"), "dropped nosy private not authorized to receive");
  EXPECT_EQ(hooks_->WaitFor("delivered friendly private"), "delivered friendly private p 1");
  // Nobody subscribed: dropped with no client.
  pub->Publish("a/b", "n", 0);
  EXPECT_EQ(hooks_->WaitFor("dropped - a/b"), "dropped - a/b no subscribers");
}

TEST_P(HooksTest, WillSentAndBrokerStopping) {
  Start();
  auto watcher = Connected("w", version());
  ASSERT_TRUE(watcher->Subscribe("wills/#", 0));
  {
    auto dying = Client(version());
    mqtt::Will will;
    will.topic = "wills/d";
    const std::string payload = "gone";
    will.payload =
        absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
    EXPECT_EQ(dying->Connect("d", std::nullopt, std::nullopt, true, will), 0);
  }
  EXPECT_EQ(hooks_->WaitFor("will d"), "will d wills/d gone");
  auto got = watcher->NextOf(PacketType::kPublish);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->payload, "gone");
  broker_->Close();
  EXPECT_EQ(hooks_->WaitFor("stopping"), "stopping");
}

TEST_P(HooksTest, InlineClientSubscribesAndPublishesLikeANetworkClient) {
  Start(/*shards=*/3);
  auto inline_client = broker_->NewInlineClient("app");
  ASSERT_TRUE(inline_client.ok()) << inline_client.status();
  // A retained message before the subscription comes through the callback.
  auto pub = Connected("pub", version());
  ASSERT_TRUE(pub->Publish("sensors/1/temp", "21", 1, /*retain=*/true));
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::string> seen;
  std::atomic<bool> on_other_thread{true};
  const auto test_thread = std::this_thread::get_id();
  auto granted = (*inline_client)->Subscribe("sensors/+/temp", 2, [&](const InlineMessage& m) {
    if (std::this_thread::get_id() == test_thread) on_other_thread = false;
    std::lock_guard<std::mutex> lock(mutex);
    seen.push_back(Cat(m.topic, "=", m.payload, " q", m.qos, m.retain ? " r" : ""));
    cv.notify_all();
  });
  ASSERT_TRUE(granted.ok()) << granted.status();
  EXPECT_EQ(*granted, 2);
  ASSERT_TRUE(pub->Publish("sensors/2/temp", "22", 1, false, 11));
  {
    std::unique_lock<std::mutex> lock(mutex);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(3), [&] { return seen.size() >= 2; }));
    EXPECT_EQ(seen[0], "sensors/1/temp=21 q1 r");
    EXPECT_EQ(seen[1], "sensors/2/temp=22 q1");
  }
  EXPECT_TRUE(on_other_thread.load());
  // The inline client publishes to a network subscriber (retained too).
  auto sub = Connected("sub", version());
  ASSERT_TRUE(sub->Subscribe("cmd/#", 1));
  ASSERT_TRUE((*inline_client)->Publish("cmd/lamp", "on", 1).ok());
  auto got = sub->NextOf(PacketType::kPublish);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->topic, "cmd/lamp");
  EXPECT_EQ(got->payload, "on");
  EXPECT_EQ(got->qos, 1);
  EXPECT_EQ(hooks_->WaitFor("arrived app"), "arrived app cmd/lamp on inline");
  // Unsubscribe: nothing more arrives.
  EXPECT_TRUE((*inline_client)->Unsubscribe("sensors/+/temp").ok());
  EXPECT_EQ((*inline_client)->Unsubscribe("sensors/+/temp").code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(pub->Publish("sensors/3/temp", "23", 1, false, 12));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  {
    std::lock_guard<std::mutex> lock(mutex);
    EXPECT_EQ(seen.size(), 2u);
  }
  // Its client id is taken while it lives.
  auto clash = Client(version());
  EXPECT_EQ(clash->Connect("app"), v5() ? 0x85 : 0x02);
  EXPECT_EQ(broker_->NewInlineClient("pub").status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ((*inline_client)->Publish("a/#", "x").code(), absl::StatusCode::kInvalidArgument);
  inline_client->reset();
  EXPECT_EQ(hooks_->WaitFor("terminated app"), "terminated app inline client closed");
}

// OnAuthenticate defers; another thread answers later. Packets the client
// sent right after CONNECT are held and handled once it is let in.
class SlowBackendHooks : public Hooks {
 public:
  ~SlowBackendHooks() override {
    for (std::thread& t : threads_) t.join();
  }
  AuthDecision OnAuthenticate(const ConnectRequest& request) override {
    AuthCompletion completion = request.Defer();
    const bool good = request.password == "late-but-right";
    const bool forget = request.client.username == "forgotten";
    std::lock_guard<std::mutex> lock(mutex_);
    threads_.emplace_back([completion = std::move(completion), good, forget]() mutable {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (forget) return;  // dropped unanswered: refused
      completion.Complete(good ? AuthDecision::Allow() : AuthDecision::Deny(0x86));
    });
    return AuthDecision::Pending();
  }

 private:
  std::mutex mutex_;
  std::vector<std::thread> threads_;
};

TEST_P(HooksTest, DeferredAuthenticationHoldsPacketsUntilTheAnswer) {
  auto slow = std::make_shared<SlowBackendHooks>();
  Options options;
  options.shards = 2;
  options.listeners = {"127.0.0.1:0"};
  options.hooks.push_back(slow);
  auto broker = Broker::Create(options);
  ASSERT_TRUE(broker.ok());
  broker_ = *std::move(broker);
  ASSERT_TRUE(broker_->Start().ok());
  const std::string address = broker_->BoundAddresses().at(0);
  port_ = static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));

  // CONNECT and SUBSCRIBE in one go, before any CONNACK.
  auto client = Client(version());
  mqtt::Connect connect;
  connect.version = version();
  connect.client_id = "slow";
  connect.username = "alice";
  const std::string password = "late-but-right";
  connect.password =
      absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(password.data()), password.size());
  client->Send(connect);
  mqtt::Subscribe subscribe;
  subscribe.packet_id = 7;
  subscribe.subscriptions.push_back({"t", {1}});
  client->Send(subscribe);
  const auto sent = std::chrono::steady_clock::now();
  auto connack = client->NextOf(PacketType::kConnack);
  ASSERT_TRUE(connack);
  EXPECT_EQ(connack->code, 0);
  EXPECT_GE(std::chrono::steady_clock::now() - sent, std::chrono::milliseconds(90));
  auto suback = client->NextOf(PacketType::kSuback);
  ASSERT_TRUE(suback);
  EXPECT_EQ(suback->packet_id, 7);
  EXPECT_EQ(suback->codes, std::vector<uint8_t>{1});

  auto refused = Client(version());
  EXPECT_EQ(refused->Connect("r", "bob", "wrong"), v5() ? 0x86 : 0x04);
  auto forgotten = Client(version());
  EXPECT_EQ(forgotten->Connect("f", "forgotten", "x"), v5() ? 0x87 : 0x05);
}

TEST_P(HooksTest, InlineClientTakesItsShareOfASharedSubscription) {
  Start(/*shards=*/1);
  std::atomic<int> inline_got{0};  // outlives the client whose callback counts
  auto worker = broker_->NewInlineClient("inline-worker");
  ASSERT_TRUE(worker.ok());
  auto granted = (*worker)->Subscribe("$share/g/jobs", 1, [&](const InlineMessage& m) {
    EXPECT_EQ(m.filter, "$share/g/jobs");
    ++inline_got;
  });
  ASSERT_TRUE(granted.ok());
  auto network = Connected("net-worker", version());
  ASSERT_TRUE(network->Subscribe("$share/g/jobs", 1));
  auto pub = Connected("boss", version());
  for (uint16_t i = 0; i < 4; ++i) ASSERT_TRUE(pub->Publish("jobs", "j", 1, false, 20 + i));
  int network_got = 0;
  while (network->NextOf(PacketType::kPublish, 500)) ++network_got;
  EXPECT_EQ(network_got + inline_got.load(), 4);
  EXPECT_EQ(inline_got.load(), 2);  // round robin over both members
}

// Several hooks: called in registration order (Options::hooks, then
// AddHook); the first decisive answer wins; Events() opts out.
class OrderHook : public Hooks {
 public:
  OrderHook(std::string name, std::vector<std::string>* calls, std::mutex* mutex, Decision answer,
            uint32_t events = kHookAll)
      : name_(std::move(name)), calls_(calls), mutex_(mutex), answer_(answer), events_(events) {}
  uint32_t Events() const override { return events_; }
  AuthDecision OnAuthenticate(const ConnectRequest&) override {
    Note("auth");
    return answer_;
  }
  void OnSessionEstablished(const ClientInfo&) override { Note("established"); }
  Decision OnSubscribe(const ClientInfo&, SubscribeRequest&) override {
    Note("subscribe");
    return Decision::NoOpinion();
  }

 private:
  void Note(const std::string& what) {
    std::lock_guard<std::mutex> lock(*mutex_);
    calls_->push_back(name_ + ":" + what);
  }
  std::string name_;
  std::vector<std::string>* calls_;
  std::mutex* mutex_;
  Decision answer_;
  uint32_t events_;
};

TEST(HookChain, OrderFirstDecisiveAnswerAndOptOut) {
  std::vector<std::string> calls;
  std::mutex mutex;
  Options options;
  options.shards = 1;
  options.listeners = {"127.0.0.1:0"};
  options.hooks.push_back(
      std::make_shared<OrderHook>("a", &calls, &mutex, Decision::NoOpinion(), kHookConnection));
  auto broker = Broker::Create(options);
  ASSERT_TRUE(broker.ok());
  ASSERT_TRUE(
      (*broker)->AddHook(std::make_shared<OrderHook>("b", &calls, &mutex, Decision::Allow())).ok());
  ASSERT_TRUE(
      (*broker)->AddHook(std::make_shared<OrderHook>("c", &calls, &mutex, Decision::Deny())).ok());
  ASSERT_TRUE((*broker)->Start().ok());
  const std::string address = (*broker)->BoundAddresses().at(0);
  TestClient client(ProtocolVersion::kV5);
  ASSERT_TRUE(
      client.Open(static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)))));
  // "c" would refuse, but "b" allowed first.
  EXPECT_EQ(client.Connect("x"), 0);
  ASSERT_TRUE(client.Subscribe("t", 0));
  (*broker)->Close();
  (*broker)->Wait();
  std::lock_guard<std::mutex> lock(mutex);
  EXPECT_EQ(calls, (std::vector<std::string>{"a:auth", "b:auth", "a:established", "b:established",
                                             "c:established", "b:subscribe", "c:subscribe"}));
}

// Options::Tls::identity_as_username needs a CA, and touches only tls://
// listeners: on plain TCP the client's own User Name reaches hooks. (The TLS
// side is tested end to end in tests/integration/test_tls.py.)
TEST(TlsIdentityAsUsername, NeedsACaAndLeavesPlainTcpAlone) {
  Options options;
  options.shards = 1;
  options.listeners = {"127.0.0.1:0"};
  options.tls.identity_as_username = true;
  auto refused = Broker::Create(options);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(), "tls.identity_as_username needs tls.ca_file");

  options.tls.ca_file = "/nonexistent/ca.pem";  // read only for tls:// listeners
  std::mutex mutex;
  std::optional<std::string> username;
  bool from_certificate = true;
  auto hooks = std::make_shared<Recorder>();
  hooks->authenticate = [&](const ConnectRequest& r) {
    std::lock_guard<std::mutex> lock(mutex);
    username = r.client.username.has_value() ? std::optional<std::string>(*r.client.username)
                                             : std::nullopt;
    from_certificate = r.client.username_from_certificate;
    return AuthDecision::NoOpinion();
  };
  options.hooks.push_back(hooks);
  auto broker = Broker::Create(options);
  ASSERT_TRUE(broker.ok()) << broker.status();
  ASSERT_TRUE((*broker)->Start().ok());
  const std::string address = (*broker)->BoundAddresses().at(0);
  TestClient client(ProtocolVersion::kV311);
  ASSERT_TRUE(
      client.Open(static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)))));
  EXPECT_EQ(client.Connect("tcp-client", "carol", "pw"), 0);
  (*broker)->Close();
  (*broker)->Wait();
  std::lock_guard<std::mutex> lock(mutex);
  EXPECT_EQ(username, "carol");
  EXPECT_FALSE(from_certificate);
}

// Behind a load balancer (proxy_protocol=true) the hooks see the client's
// address from the PROXY header, not the balancer's (127.0.0.1); on two
// shards, so some connections are handed off to their home shard first.
TEST(ProxyProtocol, HooksSeeTheAddressInTheHeader) {
  Options options;
  options.shards = 2;
  options.listeners = {"tcp://127.0.0.1:0?proxy_protocol=true"};
  std::mutex mutex;
  std::vector<std::string> accepted;
  std::map<std::string, std::string> authenticated;  // client id -> address
  auto hooks = std::make_shared<Recorder>();
  hooks->accept = [&](std::string_view address) {
    std::lock_guard<std::mutex> lock(mutex);
    accepted.emplace_back(address);
    return Decision::NoOpinion();
  };
  hooks->authenticate = [&](const ConnectRequest& r) {
    std::lock_guard<std::mutex> lock(mutex);
    authenticated[std::string(r.client.client_id)] = std::string(r.client.remote_address);
    return AuthDecision::NoOpinion();
  };
  options.hooks.push_back(hooks);
  auto broker = Broker::Create(options);
  ASSERT_TRUE(broker.ok()) << broker.status();
  ASSERT_TRUE((*broker)->Start().ok());
  const std::string address = (*broker)->BoundAddresses().at(0);
  const auto port = static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
  for (int i = 0; i < 4; ++i) {
    TestClient client(ProtocolVersion::kV5);
    ASSERT_TRUE(client.Open(port));
    client.SendRaw(Cat("PROXY TCP4 203.0.113.", i, " 10.0.0.1 ", 5000 + i, " 1883\r\n"));
    EXPECT_EQ(client.Connect(Cat("lb-", i)), 0);
  }
  (*broker)->Close();
  (*broker)->Wait();
  std::lock_guard<std::mutex> lock(mutex);
  EXPECT_EQ(accepted.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_NE(std::find(accepted.begin(), accepted.end(), Cat("203.0.113.", i, ":", 5000 + i)),
              accepted.end())
        << i;
    EXPECT_EQ(authenticated[Cat("lb-", i)], Cat("203.0.113.", i, ":", 5000 + i));
  }
}

TEST(InlineClient, UnavailableAfterTheBrokerStops) {
  Options options;
  options.shards = 1;
  options.listeners = {"127.0.0.1:0"};
  auto broker = Broker::Create(options);
  ASSERT_TRUE(broker.ok());
  EXPECT_EQ((*broker)->NewInlineClient("x").status().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE((*broker)->Start().ok());
  auto client = (*broker)->NewInlineClient("x");
  ASSERT_TRUE(client.ok());
  EXPECT_EQ((*broker)->AddHook(std::make_shared<Hooks>()).code(),
            absl::StatusCode::kFailedPrecondition);
  (*broker)->Close();
  (*broker)->Wait();
  EXPECT_EQ((*client)->Publish("a", "b").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ((*client)->Subscribe("a", 0, nullptr).status().code(), absl::StatusCode::kUnavailable);
}

// Destroying an inline client from a plain thread waits for its shard: a
// callback that captured the caller's state by reference must not run after
// the destructor returned, even while messages for it keep arriving.
TEST(InlineClient, NoCallbackRunsAfterItIsDestroyed) {
  Options options;
  options.shards = 2;
  options.listeners = {"127.0.0.1:0"};
  auto broker = Broker::Create(options);
  ASSERT_TRUE(broker.ok());
  ASSERT_TRUE((*broker)->Start().ok());
  const uint16_t port = testing::BoundPort(**broker);
  auto got = std::make_shared<std::atomic<int>>(0);
  auto destroyed = std::make_shared<std::atomic<bool>>(false);
  auto late = std::make_shared<std::atomic<int>>(0);
  auto listener = (*broker)->NewInlineClient("listener");
  ASSERT_TRUE(listener.ok());
  ASSERT_TRUE((*listener)
                  ->Subscribe("flood", 0,
                              [got, destroyed, late](const InlineMessage&) {
                                got->fetch_add(1);
                                if (destroyed->load()) late->fetch_add(1);
                                // Slower than the flood: the shard always has
                                // a backlog of messages for this callback.
                                std::this_thread::sleep_for(std::chrono::microseconds(20));
                              })
                  .ok());
  // A network publisher floods the topic until told to stop (bounded).
  std::atomic<bool> stop{false};
  std::atomic<bool> connected{false};
  std::thread flood([&] {
    TestClient publisher(ProtocolVersion::kV311);
    if (!publisher.Open(port) || publisher.Connect("flooder") != std::optional<uint8_t>(0)) return;
    connected = true;
    for (int i = 0; i < 2'000'000 && !stop.load(); ++i) publisher.Publish("flood", "x", 0);
  });
  absl::Cleanup end_flood = [&] {
    stop = true;
    flood.join();
  };
  for (int i = 0; i < 500 && got->load() < 2000; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(connected.load());
  ASSERT_GE(got->load(), 2000) << "the flood did not reach the inline client";
  listener->reset();  // mid-flood
  destroyed->store(true);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the flood goes on
  std::move(end_flood).Invoke();
  EXPECT_EQ(late->load(), 0) << "callbacks ran after ~InlineClient returned";
  (*broker)->Close();
  (*broker)->Wait();
}

}  // namespace
}  // namespace shardmq
