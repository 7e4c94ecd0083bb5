// RedisLink against a real redis-server the test starts itself (skipped
// when /usr/bin/redis-server is not installed): two or three links as
// different nodes on one Redis, each test under a prefix of its own.
#include "cluster/redis_link.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace shardmq::cluster {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kRedisServer = "/usr/bin/redis-server";

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return -1;
  }
  close(fd);
  return ntohs(addr.sin_port);
}

// A hiredis connection for the test's own checks.
class Client {
 public:
  explicit Client(int port) {
    timeval tv = {1, 0};
    c_ = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c_ != nullptr && c_->err == 0) redisSetTimeout(c_, tv);
  }
  ~Client() {
    if (c_ != nullptr) redisFree(c_);
  }
  bool ok() const { return c_ != nullptr && c_->err == 0; }

  // The reply as text: strings as they are, integers in decimal, nil as
  // "(nil)", arrays' elements joined with '|', errors as "ERR:...".
  std::string Run(std::vector<std::string> args) {
    if (!ok()) return "(no connection)";
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const std::string& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(c_, static_cast<int>(args.size()), argv.data(), lens.data()));
    if (r == nullptr) return "(no connection)";
    std::string out = Text(r);
    freeReplyObject(r);
    return out;
  }
  std::vector<std::string> List(std::vector<std::string> args) {
    std::vector<std::string> out;
    if (!ok()) return out;
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const std::string& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(c_, static_cast<int>(args.size()), argv.data(), lens.data()));
    if (r == nullptr) return out;
    if (r->type == REDIS_REPLY_ARRAY) {
      for (size_t i = 0; i < r->elements; ++i) out.push_back(Text(r->element[i]));
    }
    freeReplyObject(r);
    return out;
  }

 private:
  static std::string Text(const redisReply* r) {
    switch (r->type) {
      case REDIS_REPLY_STRING:
      case REDIS_REPLY_STATUS:
        return std::string(r->str, r->len);
      case REDIS_REPLY_ERROR:
        return "ERR:" + std::string(r->str, r->len);
      case REDIS_REPLY_INTEGER:
        return std::to_string(r->integer);
      case REDIS_REPLY_NIL:
        return "(nil)";
      case REDIS_REPLY_ARRAY: {
        std::string out;
        for (size_t i = 0; i < r->elements; ++i) {
          if (i > 0) out += "|";
          out += Text(r->element[i]);
        }
        return out;
      }
    }
    return "?";
  }
  redisContext* c_ = nullptr;
};

// A redis-server of the test's own, on a free loopback port, saving nothing.
class RedisServer {
 public:
  ~RedisServer() { Kill(); }

  bool Start(int port = 0) {
    port_ = port != 0 ? port : FreePort();
    if (port_ <= 0) return false;
    const std::string port_text = std::to_string(port_);
    std::vector<std::string> args = {kRedisServer, "--port",     port_text, "--bind",
                                     "127.0.0.1",  "--save",     "",        "--appendonly",
                                     "no",         "--loglevel", "warning"};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    const int rc = posix_spawn(&pid_, kRedisServer, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      pid_ = -1;
      return false;
    }
    const Clock::time_point deadline = Clock::now() + 5s;
    while (Clock::now() < deadline) {
      Client client(port_);
      if (client.ok() && client.Run({"PING"}) == "PONG") return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    int status;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

 private:
  pid_t pid_ = -1;
  int port_ = -1;
};

// Waits up to `timeout` for `done`; true if it came.
bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout = 3s) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return done();
}

// What a link's events reported.
struct Recorder {
  std::mutex mutex;
  std::vector<ClaimResult> claims;
  struct Takeover {
    std::string client, by;
    uint64_t token;
  };
  std::vector<Takeover> takeovers;
  std::vector<std::pair<std::string, SessionState>> adopted;
  // Called on takeover_requested (on the link's thread), if set.
  std::function<void(const Takeover&)> on_takeover;

  RedisLink::Events Events() {
    RedisLink::Events events;
    events.claimed = [this](ClaimResult r) {
      std::lock_guard<std::mutex> lock(mutex);
      claims.push_back(std::move(r));
    };
    events.takeover_requested = [this](std::string client, std::string by, uint64_t token) {
      Takeover t{std::move(client), std::move(by), token};
      std::function<void(const Takeover&)> handler;
      {
        std::lock_guard<std::mutex> lock(mutex);
        takeovers.push_back(t);
        handler = on_takeover;
      }
      if (handler) handler(t);
    };
    events.adopted = [this](std::string client, SessionState state) {
      std::lock_guard<std::mutex> lock(mutex);
      adopted.emplace_back(std::move(client), std::move(state));
    };
    return events;
  }

  // Waits for the claim report with `token`.
  bool WaitClaim(uint64_t token, ClaimResult* out, std::chrono::milliseconds timeout = 3s) {
    return WaitUntil(
        [&] {
          std::lock_guard<std::mutex> lock(mutex);
          for (const ClaimResult& r : claims) {
            if (r.token == token) {
              *out = r;
              return true;
            }
          }
          return false;
        },
        timeout);
  }
  size_t Adopted() {
    std::lock_guard<std::mutex> lock(mutex);
    return adopted.size();
  }
};

class RedisLinkTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // As the daemon does: hiredis's writes to a killed Redis must not kill us.
    signal(SIGPIPE, SIG_IGN);
    if (access(kRedisServer, X_OK) != 0) return;
    server_ = new RedisServer;
    if (!server_->Start()) {
      delete server_;
      server_ = nullptr;
    }
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    if (access(kRedisServer, X_OK) != 0) {
      GTEST_SKIP() << kRedisServer << " is not installed (apt-get install redis-server)";
    }
    ASSERT_NE(server_, nullptr) << "redis-server did not start";
    prefix_ =
        std::string("t:") + ::testing::UnitTest::GetInstance()->current_test_info()->name() + ":";
    client_ = std::make_unique<Client>(server_->port());
    ASSERT_TRUE(client_->ok());
  }

  RedisLinkOptions Options(std::string node, std::chrono::milliseconds lease = 2000ms) {
    RedisLinkOptions options;
    options.url = server_->url();
    options.node_id = std::move(node);
    options.prefix = prefix_;
    options.lease = lease;
    return options;
  }

  std::unique_ptr<RedisLink> Make(RedisLinkOptions options, Recorder* recorder) {
    auto link = RedisLink::Create(std::move(options), recorder->Events());
    EXPECT_TRUE(link.ok()) << link.status();
    return link.ok() ? std::move(*link) : nullptr;
  }

  // Links A and B with `lease`, both started, and A owning client "c".
  void StartPairOwningC(std::chrono::milliseconds lease, Recorder& rec_a, Recorder& rec_b,
                        std::unique_ptr<RedisLink>& a, std::unique_ptr<RedisLink>& b) {
    a = Make(Options("A", lease), &rec_a);
    b = Make(Options("B", lease), &rec_b);
    ASSERT_TRUE(a != nullptr && b != nullptr);
    a->Start();
    b->Start();
    a->Claim("c", 1);
    ClaimResult r;
    ASSERT_TRUE(rec_a.WaitClaim(1, &r));
  }

  // Waits until `link` has run `n` commands in all.
  static bool WaitCommands(RedisLink& link, uint64_t n) {
    return WaitUntil([&] { return link.Stats().commands >= n; });
  }

  std::string K(std::string_view name) { return prefix_ + std::string(name); }
  std::string Run(std::vector<std::string> args) { return client_->Run(std::move(args)); }

  static RedisServer* server_;
  std::string prefix_;
  std::unique_ptr<Client> client_;
};

RedisServer* RedisLinkTest::server_ = nullptr;

TEST(RedisLinkOptionsTest, RefusesBadOptions) {
  auto create = [](std::string url, std::string node = "n1",
                   std::chrono::milliseconds lease = 1000ms) {
    RedisLinkOptions options;
    options.url = std::move(url);
    options.node_id = std::move(node);
    options.lease = lease;
    return RedisLink::Create(options, {});
  };
  auto bad = create("http://example.com");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--cluster-redis=http://example.com"), std::string::npos)
      << bad.status();
  for (const char* url :
       {"redis://", "redis://:6379", "redis://host:0", "redis://host:65536", "redis://host:12x",
        "redis://host:6379/x", "redis://pw@host:6379", "redis://[::1:5"}) {
    auto link = create(url);
    EXPECT_FALSE(link.ok()) << url;
    if (!link.ok()) {
      EXPECT_NE(link.status().message().find(std::string("--cluster-redis=") + url),
                std::string::npos)
          << link.status();
    }
  }
  // The password stays out of the message.
  bad = create("redis://:secret@host:bad");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--cluster-redis=redis://:***@host:bad"), std::string::npos)
      << bad.status();
  EXPECT_EQ(bad.status().message().find("secret"), std::string::npos) << bad.status();
  EXPECT_FALSE(create("redis://:@host:1").ok());  // empty password
  EXPECT_FALSE(create("redis://127.0.0.1:6379", "").ok());
  EXPECT_FALSE(create("redis://127.0.0.1:6379", "n1", 99ms).ok());
  EXPECT_TRUE(create("redis://127.0.0.1:6379", "n1", 100ms).ok());
  EXPECT_TRUE(create("redis://:secret@127.0.0.1:6379/3").ok());
  EXPECT_TRUE(create("redis://user:p@ss@redis.example:1").ok());
  EXPECT_TRUE(create("redis://[::1]:6379").ok());
  EXPECT_TRUE(create("redis://localhost").ok());
}

TEST(RedisLinkOptionsTest, FullBufferDropsOldestPushOnly) {
  RedisLinkOptions options;
  options.url = "redis://127.0.0.1:1";  // never started: everything stays buffered
  options.node_id = "n1";
  options.max_buffered = 3;
  auto link = RedisLink::Create(options, {});
  ASSERT_TRUE(link.ok());
  RedisLink& l = **link;
  l.SetField("c", "f", "v");
  l.Push("c", "p1", 10);
  l.Push("c", "p2", 10);
  EXPECT_EQ(l.Stats().buffered, 3u);
  l.Push("c", "p3", 10);  // p1 goes
  EXPECT_EQ(l.Stats().dropped_pushes, 1u);
  EXPECT_EQ(l.Stats().buffered, 3u);
  l.Forget("c");    // p2 goes
  l.Claim("c", 1);  // p3 goes
  EXPECT_EQ(l.Stats().dropped_pushes, 3u);
  l.DeleteField("c", "f");  // no Push left: never dropped
  EXPECT_EQ(l.Stats().buffered, 4u);
  l.Push("c", "p4", 10);  // the newcomer is the oldest Push
  EXPECT_EQ(l.Stats().dropped_pushes, 4u);
  EXPECT_EQ(l.Stats().buffered, 4u);
}

TEST(RedisLinkOptionsTest, LoadRetainedFailsWithoutRedis) {
  RedisLinkOptions options;
  options.url = "redis://127.0.0.1:" + std::to_string(FreePort());
  options.node_id = "n1";
  auto link = RedisLink::Create(options, {});
  ASSERT_TRUE(link.ok());
  const Clock::time_point start = Clock::now();
  EXPECT_FALSE((*link)->LoadRetained(500ms).ok());
  EXPECT_LT(Clock::now() - start, 2s);
}

TEST_F(RedisLinkTest, ClaimsANewId) {
  Recorder rec;
  auto a = Make(Options("A"), &rec);
  ASSERT_NE(a, nullptr);
  a->Start();
  a->Claim("c1", 7);
  ClaimResult r;
  ASSERT_TRUE(rec.WaitClaim(7, &r));
  EXPECT_EQ(r.client_id, "c1");
  EXPECT_TRUE(r.won);
  EXPECT_EQ(r.previous_owner, "");
  EXPECT_FALSE(r.found);
  EXPECT_TRUE(r.state.fields.empty());
  EXPECT_TRUE(r.state.queued.empty());
  EXPECT_EQ(Run({"GET", K("owner:c1")}), "A");
  EXPECT_EQ(Run({"SISMEMBER", K("owned:A"), "c1"}), "1");
  EXPECT_EQ(Run({"SISMEMBER", K("nodes"), "A"}), "1");
  EXPECT_EQ(Run({"EXISTS", K("node:A")}), "1");
  // Claimed again by its owner: previous_owner is this node.
  a->Claim("c1", 8);
  ASSERT_TRUE(rec.WaitClaim(8, &r));
  EXPECT_EQ(r.previous_owner, "A");
  EXPECT_TRUE(r.won);
  EXPECT_EQ(a->Stats().claims, 2u);
  EXPECT_TRUE(a->Stats().connected);
  a->Stop();
  EXPECT_EQ(Run({"EXISTS", K("node:A")}), "0");
}

TEST_F(RedisLinkTest, TakeoverMovesFieldsAndQueue) {
  // Any bytes in a client id: NUL, the separators, UTF-8.
  const std::string client = std::string("id\0:1:|\xc3\xa9", 9);
  Recorder rec_a, rec_b;
  auto a = Make(Options("A"), &rec_a);
  auto b = Make(Options("B"), &rec_b);
  ASSERT_TRUE(a != nullptr && b != nullptr);
  RedisLink* a_ptr = a.get();
  rec_a.on_takeover = [a_ptr](const Recorder::Takeover& t) {
    // What a broker does: queue what it held, then answer.
    a_ptr->Push(t.client, "m1", 100);
    a_ptr->Push(t.client, std::string("m\0002", 3), 100);
    a_ptr->Released(t.client, t.by, t.token);
  };
  a->Start();
  b->Start();
  a->Claim(client, 1);
  ClaimResult r;
  ASSERT_TRUE(rec_a.WaitClaim(1, &r));
  a->SetField(client, "sub/a", "1");
  a->SetField(client, "settings", std::string("x\0y", 3));
  ASSERT_TRUE(WaitCommands(*a, 3));
  b->Claim(client, 9);
  ASSERT_TRUE(rec_b.WaitClaim(9, &r));
  EXPECT_TRUE(r.won);
  EXPECT_EQ(r.client_id, client);
  EXPECT_EQ(r.previous_owner, "A");
  EXPECT_TRUE(r.found);
  std::sort(r.state.fields.begin(), r.state.fields.end());
  std::vector<std::pair<std::string, std::string>> fields = {{"settings", std::string("x\0y", 3)},
                                                             {"sub/a", "1"}};
  EXPECT_EQ(r.state.fields, fields);
  EXPECT_EQ(r.state.queued, (std::vector<std::string>{"m1", std::string("m\0002", 3)}));
  {
    std::lock_guard<std::mutex> lock(rec_a.mutex);
    ASSERT_EQ(rec_a.takeovers.size(), 1u);
    EXPECT_EQ(rec_a.takeovers[0].client, client);
    EXPECT_EQ(rec_a.takeovers[0].by, "B");
    EXPECT_EQ(rec_a.takeovers[0].token, 9u);
  }
  EXPECT_EQ(Run({"EXISTS", K("q:" + client)}), "0");
  EXPECT_EQ(Run({"GET", K("owner:" + client)}), "B");
  EXPECT_EQ(Run({"SISMEMBER", K("owned:A"), client}), "0");
  EXPECT_EQ(Run({"SISMEMBER", K("owned:B"), client}), "1");
  EXPECT_EQ(b->Stats().takeovers_sent, 1u);
  EXPECT_EQ(a->Stats().takeovers_received, 1u);
  EXPECT_EQ(b->Stats().takeover_timeouts, 0u);
  // A no longer owns it: its writes are refused.
  const uint64_t before = a->Stats().commands;
  a->SetField(client, "late", "1");
  ASSERT_TRUE(WaitCommands(*a, before + 1));
  EXPECT_EQ(Run({"HEXISTS", K("s:" + client), "late"}), "0");
}

TEST_F(RedisLinkTest, UnansweredTakeoverCompletesAfterALease) {
  Recorder rec_a, rec_b;
  std::unique_ptr<RedisLink> a, b;
  ASSERT_NO_FATAL_FAILURE(StartPairOwningC(300ms, rec_a, rec_b, a, b));
  const Clock::time_point start = Clock::now();
  b->Claim("c", 2);
  // Other commands keep flowing while the claim waits.
  b->SetRetained("topic", "body");
  ASSERT_TRUE(WaitUntil([&] { return Run({"HGET", K("retained"), "topic"}) == "body"; }, 1s));
  EXPECT_LT(Clock::now() - start, 250ms);
  ClaimResult r;
  ASSERT_TRUE(rec_b.WaitClaim(2, &r));
  const auto elapsed = Clock::now() - start;
  EXPECT_GE(elapsed, 250ms);
  EXPECT_LT(elapsed, 1500ms);
  EXPECT_TRUE(r.won);
  EXPECT_EQ(r.previous_owner, "A");
  EXPECT_EQ(b->Stats().takeover_timeouts, 1u);
  EXPECT_EQ(a->Stats().takeovers_received, 1u);
}

TEST_F(RedisLinkTest, RacingClaimsHaveOneWinner) {
  // B asks A (which never answers); meanwhile C claims the id from B.
  Recorder rec_a, rec_b, rec_c;
  auto a = Make(Options("A", 300ms), &rec_a);
  auto b = Make(Options("B", 300ms), &rec_b);
  auto c = Make(Options("C", 300ms), &rec_c);
  ASSERT_TRUE(a != nullptr && b != nullptr && c != nullptr);
  a->Start();
  b->Start();
  c->Start();
  a->Claim("id", 1);
  ClaimResult r;
  ASSERT_TRUE(rec_a.WaitClaim(1, &r));
  b->Claim("id", 2);
  ASSERT_TRUE(WaitUntil([&] { return b->Stats().takeovers_sent == 1; }));
  c->Claim("id", 3);
  ClaimResult rb, rc;
  ASSERT_TRUE(rec_b.WaitClaim(2, &rb));
  ASSERT_TRUE(rec_c.WaitClaim(3, &rc));
  EXPECT_FALSE(rb.won);
  EXPECT_EQ(rb.previous_owner, "A");
  EXPECT_TRUE(rc.won);
  EXPECT_EQ(rc.previous_owner, "B");
  EXPECT_EQ(Run({"GET", K("owner:id")}), "C");
  EXPECT_EQ(Run({"SISMEMBER", K("owned:B"), "id"}), "0");
  EXPECT_EQ(Run({"SISMEMBER", K("owned:A"), "id"}), "0");
  std::lock_guard<std::mutex> lock(rec_b.mutex);
  EXPECT_EQ(rec_b.takeovers.size(), 1u);  // C asked B
}

TEST_F(RedisLinkTest, AdoptsACrashedNodesSessions) {
  Recorder rec_a, rec_b;
  std::unique_ptr<RedisLink> a, b;
  ASSERT_NO_FATAL_FAILURE(StartPairOwningC(500ms, rec_a, rec_b, a, b));
  a->SetField("c", "f", "v");
  a->Push("c", "queued", 10);
  ASSERT_TRUE(WaitCommands(*a, 3));
  const Clock::time_point start = Clock::now();
  a->AbandonForTest();  // node:A is left to expire
  EXPECT_EQ(Run({"EXISTS", K("node:A")}), "1");
  Run({"RPUSH", K("inbox:A"), "a request no one will read"});
  ASSERT_TRUE(WaitUntil([&] { return rec_b.Adopted() == 1; }, 3s));
  const auto elapsed = Clock::now() - start;
  EXPECT_LT(elapsed, 1150ms) << "adoption should take at most about 1.5 leases";
  {
    std::lock_guard<std::mutex> lock(rec_b.mutex);
    EXPECT_EQ(rec_b.adopted[0].first, "c");
    EXPECT_EQ(rec_b.adopted[0].second.fields,
              (std::vector<std::pair<std::string, std::string>>{{"f", "v"}}));
  }
  EXPECT_EQ(Run({"GET", K("owner:c")}), "B");
  EXPECT_EQ(Run({"SISMEMBER", K("owned:B"), "c"}), "1");
  EXPECT_EQ(Run({"EXISTS", K("owned:A")}), "0");
  EXPECT_EQ(Run({"SISMEMBER", K("nodes"), "A"}), "0");
  EXPECT_EQ(Run({"EXISTS", K("inbox:A")}), "0");
  EXPECT_EQ(Run({"LRANGE", K("q:c"), "0", "-1"}), "queued");  // stays in Redis
  EXPECT_EQ(b->Stats().adopted, 1u);
}

TEST_F(RedisLinkTest, CleanStopIsAdoptedAtTheNextCheck) {
  Recorder rec_a, rec_b;
  std::unique_ptr<RedisLink> a, b;
  ASSERT_NO_FATAL_FAILURE(StartPairOwningC(1000ms, rec_a, rec_b, a, b));
  const Clock::time_point start = Clock::now();
  a->Stop();
  EXPECT_LT(Clock::now() - start, 1500ms) << "Stop should be prompt";
  EXPECT_EQ(Run({"EXISTS", K("node:A")}), "0");
  ASSERT_TRUE(WaitUntil([&] { return rec_b.Adopted() == 1; }, 3s));
  EXPECT_LT(Clock::now() - start, 900ms) << "no need to wait out the lease";
  EXPECT_EQ(Run({"GET", K("owner:c")}), "B");
}

TEST_F(RedisLinkTest, RestartAdoptsWhatItsIdStillOwns) {
  {
    Recorder rec;
    auto a = Make(Options("A"), &rec);
    ASSERT_NE(a, nullptr);
    a->Start();
    a->Claim("c", 1);
    a->SetField("c", "f", "v");
    a->Claim("gone", 2);
    ASSERT_TRUE(WaitCommands(*a, 3));
    a->Stop();
  }
  // Meanwhile another node took "gone".
  Run({"SET", K("owner:gone"), "Z"});
  Recorder rec;
  auto a = Make(Options("A"), &rec);
  ASSERT_NE(a, nullptr);
  a->Start();
  ASSERT_TRUE(WaitUntil([&] { return rec.Adopted() >= 1; }));
  std::this_thread::sleep_for(50ms);
  std::lock_guard<std::mutex> lock(rec.mutex);
  ASSERT_EQ(rec.adopted.size(), 1u);
  EXPECT_EQ(rec.adopted[0].first, "c");
  EXPECT_EQ(rec.adopted[0].second.fields,
            (std::vector<std::pair<std::string, std::string>>{{"f", "v"}}));
  EXPECT_EQ(Run({"SISMEMBER", K("owned:A"), "gone"}), "0");
  EXPECT_EQ(a->Stats().adopted, 0u);  // its own sessions are not counted
}

TEST_F(RedisLinkTest, SessionCommandsOnlyWhenOwned) {
  Recorder rec;
  auto a = Make(Options("A"), &rec);
  ASSERT_NE(a, nullptr);
  a->Start();
  a->Claim("mine", 1);
  a->SetField("mine", "f", "v");
  a->SetField("mine", "g", "w");
  a->DeleteField("mine", "g");
  for (int i = 1; i <= 5; ++i) a->Push("mine", "m" + std::to_string(i), 3);
  // Owned by another node: untouched.
  Run({"SET", K("owner:theirs"), "Z"});
  Run({"HSET", K("s:theirs"), "f", "keep"});
  Run({"RPUSH", K("q:theirs"), "keep"});
  a->SetField("theirs", "f", "overwritten");
  a->Forget("theirs");
  ASSERT_TRUE(WaitCommands(*a, 11));
  EXPECT_EQ(Run({"HGETALL", K("s:mine")}), "f|v");
  EXPECT_EQ(Run({"LRANGE", K("q:mine"), "0", "-1"}), "m3|m4|m5");
  EXPECT_EQ(Run({"HGET", K("s:theirs"), "f"}), "keep");
  EXPECT_EQ(Run({"GET", K("owner:theirs")}), "Z");
  EXPECT_EQ(Run({"LLEN", K("q:theirs")}), "1");
  // ResetSession empties, keeps the ownership.
  a->ResetSession("mine");
  ASSERT_TRUE(WaitCommands(*a, 12));
  EXPECT_EQ(Run({"EXISTS", K("s:mine"), K("q:mine")}), "0");
  EXPECT_EQ(Run({"GET", K("owner:mine")}), "A");
  // Forget when owned: everything goes.
  a->SetField("mine", "f", "v");
  a->Push("mine", "m", 3);
  a->Forget("mine");
  ASSERT_TRUE(WaitCommands(*a, 15));
  EXPECT_EQ(Run({"EXISTS", K("owner:mine"), K("s:mine"), K("q:mine")}), "0");
  EXPECT_EQ(Run({"SISMEMBER", K("owned:A"), "mine"}), "0");
}

TEST_F(RedisLinkTest, PushesAreFastAndInOrder) {
  Recorder rec;
  auto a = Make(Options("A"), &rec);
  ASSERT_NE(a, nullptr);
  a->Start();
  constexpr int kCount = 20000;
  const Clock::time_point start = Clock::now();
  for (int i = 0; i < kCount; ++i) a->Push("c", std::to_string(i), kCount);
  ASSERT_TRUE(WaitUntil([&] { return a->Stats().commands >= kCount; }, 10s));
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  EXPECT_LT(elapsed, 5s) << "pipelined pushes should run thousands a second";
  EXPECT_EQ(Run({"LLEN", K("q:c")}), std::to_string(kCount));
  EXPECT_EQ(Run({"LINDEX", K("q:c"), "0"}), "0");
  EXPECT_EQ(Run({"LINDEX", K("q:c"), "-1"}), std::to_string(kCount - 1));
  std::printf("%d pushes in %lld ms\n", kCount, static_cast<long long>(elapsed.count()));
}

TEST_F(RedisLinkTest, RetainedSetClearAndLoad) {
  Recorder rec;
  auto a = Make(Options("A"), &rec);
  ASSERT_NE(a, nullptr);
  a->Start();
  a->SetRetained("a/b", "one");
  a->SetRetained(std::string("bin\0t", 5), std::string("\0\1", 2));
  a->SetRetained("gone", "x");
  a->ClearRetained("gone");
  for (int i = 0; i < 1500; ++i) a->SetRetained("many/" + std::to_string(i), "v");
  ASSERT_TRUE(WaitCommands(*a, 1504));
  Recorder rec2;
  auto loader = Make(Options("L"), &rec2);
  ASSERT_NE(loader, nullptr);
  auto loaded = loader->LoadRetained(2000ms);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->size(), 1502u);
  std::sort(loaded->begin(), loaded->end());
  EXPECT_EQ((*loaded)[0], (std::pair<std::string, std::string>{"a/b", "one"}));
  EXPECT_EQ((*loaded)[1], (std::pair<std::string, std::string>{std::string("bin\0t", 5),
                                                               std::string("\0\1", 2)}));
  EXPECT_TRUE(std::none_of(loaded->begin(), loaded->end(),
                           [](const auto& p) { return p.first == "gone"; }));
}

TEST_F(RedisLinkTest, CommandsMadeWhileRedisIsDownRunWhenItIsBack) {
  RedisServer server;
  ASSERT_TRUE(server.Start());
  Recorder rec;
  RedisLinkOptions options = Options("A");
  options.url = server.url();
  auto a = Make(options, &rec);
  ASSERT_NE(a, nullptr);
  a->Start();
  a->Claim("c", 1);
  ClaimResult r;
  ASSERT_TRUE(rec.WaitClaim(1, &r));
  const int port = server.port();
  server.Kill();
  ASSERT_TRUE(WaitUntil([&] { return !a->Stats().connected; }, 3s));
  a->SetRetained("t", "b");
  a->Push("c", "x", 10);
  a->Claim("d", 2);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(a->Stats().buffered, 3u);
  ASSERT_TRUE(server.Start(port));
  Client check(port);
  ASSERT_TRUE(WaitUntil([&] { return check.Run({"HGET", K("retained"), "t"}) == "b"; }, 8s));
  EXPECT_EQ(check.Run({"LRANGE", K("q:c"), "0", "-1"}), "x");
  ASSERT_TRUE(rec.WaitClaim(2, &r));
  EXPECT_TRUE(r.won);
  // Registered again on the new (empty) Redis, with what it owned.
  EXPECT_EQ(check.Run({"GET", K("owner:c")}), "A");
  EXPECT_EQ(check.Run({"GET", K("owner:d")}), "A");
  EXPECT_EQ(check.Run({"SMEMBERS", K("owned:A")}).size(), 3u);  // "c|d"
  EXPECT_EQ(check.Run({"EXISTS", K("node:A")}), "1");
  EXPECT_EQ(check.Run({"SISMEMBER", K("nodes"), "A"}), "1");
  EXPECT_GE(a->Stats().reconnects, 1u);
  EXPECT_TRUE(a->Stats().connected);
  EXPECT_EQ(a->Stats().buffered, 0u);
}

}  // namespace
}  // namespace shardmq::cluster
