// TlsSession over memory: a server and a client session exchange records by
// hand (no sockets), so handshake, data and refusal are tested without timing.
// Certificates are made with the openssl command line in a temp dir.
#include "shard/tls_session.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "shard/shard_group.h"

namespace shardmq::shard {
namespace {

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

class Certs {
 public:
  Certs() {
    char tmpl[] = "/tmp/tls_session_test.XXXXXX";
    dir_ = mkdtemp(tmpl);
    Run("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout ca.key "
        "-out ca.pem");
    Run("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca -keyout other.key "
        "-out other.pem");
    Sign("server", "ca", "/CN=localhost");
    Sign("client", "ca", "/CN=alice");
    Sign("rogue", "other", "/CN=mallory");
  }
  ~Certs() { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

 private:
  void Run(const std::string& cmd) {
    const std::string full = absl::StrFormat("cd %s && %s >/dev/null 2>&1", dir_, cmd);
    ASSERT_EQ(std::system(full.c_str()), 0) << full;
  }
  void Sign(const std::string& name, const std::string& ca, const std::string& subject) {
    Run(absl::StrFormat("openssl req -newkey rsa:2048 -nodes -subj %s -keyout %s.key -out %s.csr",
                        subject, name, name));
    Run(
        absl::StrFormat("openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s.key -CAcreateserial "
                        "-days 2 -out %s.pem",
                        name, ca, ca, name));
  }
  std::string dir_;
};

Certs* certs = nullptr;

class TlsSessionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { certs = new Certs(); }
  static void TearDownTestSuite() {
    delete certs;
    certs = nullptr;
  }

  std::shared_ptr<TlsContext> Server(bool require_client_cert) {
    auto ctx = TlsContext::CreateServer({certs->Path("server.pem"), certs->Path("server.key"),
                                         certs->Path("ca.pem"), require_client_cert});
    EXPECT_TRUE(ctx.ok()) << ctx.status();
    return ctx.ok() ? *ctx : nullptr;
  }
  std::shared_ptr<TlsContext> Client(const std::string& who) {
    TlsConfig config;
    config.ca_file = certs->Path("ca.pem");
    if (!who.empty()) {
      config.cert_file = certs->Path(who + ".pem");
      config.key_file = certs->Path(who + ".key");
    }
    auto ctx = TlsContext::CreateClient(config);
    EXPECT_TRUE(ctx.ok()) << ctx.status();
    return ctx.ok() ? *ctx : nullptr;
  }

  // Moves ciphertext both ways and collects plaintext until nothing moves.
  // Returns false if either side failed.
  static bool Pump(TlsSession& a, TlsSession& b, std::string* a_got, std::string* b_got) {
    uint8_t buf[4096];
    for (int round = 0; round < 50; ++round) {
      bool moved = false;
      for (auto [from, to, got] : {std::tuple{&a, &b, b_got}, std::tuple{&b, &a, a_got}}) {
        from->DrainCiphertext([&](absl::Span<const uint8_t> c) {
          to->Feed(c);
          moved = true;
        });
        int n;
        while ((n = to->Read(absl::MakeSpan(buf))) > 0) got->append(buf, buf + n);
        if (n < 0) {
          // Let the alert reach the other side, as the reactor would.
          to->DrainCiphertext([&](absl::Span<const uint8_t> c) { from->Feed(c); });
          from->Read(absl::MakeSpan(buf));
          return false;
        }
      }
      if (!moved) return true;
    }
    return true;
  }
};

TEST_F(TlsSessionTest, HandshakeAndDataBothWays) {
  auto server = TlsSession::Create(Server(true));
  auto client = TlsSession::Create(Client("client"));
  ASSERT_NE(server, nullptr);
  ASSERT_NE(client, nullptr);
  // Written before the handshake: held and sent once it completes.
  ASSERT_TRUE(server->Write(Bytes("early hello")));
  std::string at_server, at_client;
  ASSERT_TRUE(client->Write(Bytes("CONNECT")));
  ASSERT_TRUE(Pump(*server, *client, &at_server, &at_client)) << server->error() << client->error();
  EXPECT_TRUE(server->handshake_done());
  EXPECT_TRUE(client->handshake_done());
  EXPECT_EQ(at_server, "CONNECT");
  EXPECT_EQ(at_client, "early hello");
  EXPECT_EQ(server->peer_identity(), "alice");

  const std::string big(200000, 'x');
  ASSERT_TRUE(server->Write(Bytes(big)));
  ASSERT_TRUE(client->Write(Bytes("ping")));
  at_server.clear();
  at_client.clear();
  ASSERT_TRUE(Pump(*server, *client, &at_server, &at_client));
  EXPECT_EQ(at_client, big);
  EXPECT_EQ(at_server, "ping");
}

TEST_F(TlsSessionTest, TlsOneTwoWorks) {
  auto client_ctx = Client("client");
  SSL_CTX_set_max_proto_version(client_ctx->get(), TLS1_2_VERSION);
  auto server = TlsSession::Create(Server(true));
  auto client = TlsSession::Create(client_ctx);
  std::string at_server, at_client;
  ASSERT_TRUE(client->Write(Bytes("v1.2")));
  ASSERT_TRUE(Pump(*server, *client, &at_server, &at_client)) << server->error();
  EXPECT_EQ(at_server, "v1.2");
  EXPECT_EQ(server->peer_identity(), "alice");
}

TEST_F(TlsSessionTest, CertificateFromAnotherCaIsRefused) {
  auto server = TlsSession::Create(Server(true));
  auto client = TlsSession::Create(Client("rogue"));
  std::string at_server, at_client;
  ASSERT_TRUE(client->Write(Bytes("CONNECT")));
  EXPECT_FALSE(Pump(*server, *client, &at_server, &at_client));
  EXPECT_TRUE(server->failed() || client->failed());
  EXPECT_EQ(at_server, "");
  EXPECT_EQ(server->peer_identity(), "");
}

TEST_F(TlsSessionTest, MissingClientCertificateRefusedOnlyWhenRequired) {
  {
    auto server = TlsSession::Create(Server(true));
    auto client = TlsSession::Create(Client(""));
    std::string at_server, at_client;
    ASSERT_TRUE(client->Write(Bytes("CONNECT")));
    EXPECT_FALSE(Pump(*server, *client, &at_server, &at_client));
    EXPECT_EQ(at_server, "");
  }
  {
    auto server = TlsSession::Create(Server(false));
    auto client = TlsSession::Create(Client(""));
    std::string at_server, at_client;
    ASSERT_TRUE(client->Write(Bytes("CONNECT")));
    EXPECT_TRUE(Pump(*server, *client, &at_server, &at_client)) << server->error();
    EXPECT_EQ(at_server, "CONNECT");
    EXPECT_EQ(server->peer_identity(), "");
  }
}

TEST_F(TlsSessionTest, GarbageIsAFatalError) {
  auto server = TlsSession::Create(Server(false));
  server->Feed(Bytes(std::string("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c", 12)));
  uint8_t buf[64];
  EXPECT_EQ(server->Read(absl::MakeSpan(buf)), -1);
  EXPECT_TRUE(server->failed());
}

// The reactor with a TLS listener over real sockets: the handler sees only
// plaintext, and a connection handed to another shard mid-stream keeps its
// TLS state, its certificate identity and the bytes that arrived meanwhile.
class EchoHandler : public ShardHandler {
 public:
  explicit EchoHandler(Shard& shard) : shard_(shard) {}
  void OnOpen(ConnId id, const PeerInfo&, absl::Span<const uint8_t> initial) override {
    if (initial.empty()) return;
    Reply(id, "moved:" + std::string(initial.begin(), initial.end()));
  }
  void OnData(ConnId id, absl::Span<const uint8_t> bytes) override {
    std::string text(bytes.begin(), bytes.end());
    if (text.rfind("move:", 0) == 0) {
      shard_.HandOff(id, (shard_.id() + 1) % shard_.shard_count(), Bytes(text.substr(5)));
      return;
    }
    Reply(id, text);
  }
  void OnClosed(ConnId, CloseReason, void*) override {}
  void OnMail(int, const MailItem&) override {}

 private:
  void Reply(ConnId id, const std::string& what) {
    const std::string reply =
        absl::StrFormat("[%d %s %s %s]", shard_.id(), shard_.IsTls(id) ? "tls" : "plain",
                        shard_.TlsPeerIdentity(id), what);
    shard_.Send(id, Bytes(reply));
  }
  Shard& shard_;
};

class TlsClient {
 public:
  TlsClient(uint16_t port, std::shared_ptr<TlsContext> ctx) : tls_(TlsSession::Create(ctx)) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  }
  ~TlsClient() { close(fd_); }
  bool connected() const { return connected_; }
  void Write(const std::string& text) {
    tls_->Write(Bytes(text));
    Flush();
  }
  // Reads until `n` plaintext bytes arrived (or the connection ends).
  std::string Read(size_t n) {
    std::string out;
    uint8_t buf[4096];
    while (out.size() < n) {
      int r;
      while ((r = tls_->Read(absl::MakeSpan(buf))) > 0) out.append(buf, buf + r);
      Flush();
      if (r < 0 || out.size() >= n) break;
      const ssize_t got = recv(fd_, buf, sizeof(buf), 0);
      if (got <= 0) break;
      tls_->Feed(absl::Span<const uint8_t>(buf, static_cast<size_t>(got)));
    }
    return out;
  }

 private:
  void Flush() {
    tls_->DrainCiphertext([&](absl::Span<const uint8_t> c) {
      ASSERT_EQ(send(fd_, c.data(), c.size(), MSG_NOSIGNAL), static_cast<ssize_t>(c.size()));
    });
  }
  std::unique_ptr<TlsSession> tls_;
  int fd_ = -1;
  bool connected_ = false;
};

TEST_F(TlsSessionTest, ReactorTlsListenerWithHandOff) {
  ShardGroup::Options o;
  o.shard_count = 2;
  o.listeners = {{"127.0.0.1", 0, Server(true)}};
  auto group = ShardGroup::Create(o, [](Shard& s) { return std::make_unique<EchoHandler>(s); });
  ASSERT_TRUE(group.ok()) << group.status();
  ASSERT_TRUE((*group)->Start().ok());
  const uint16_t port = (*group)->BoundPorts()[0];
  for (int i = 0; i < 6; ++i) {  // connections land on both shards
    TlsClient client(port, Client("client"));
    ASSERT_TRUE(client.connected());
    client.Write("hello");
    const std::string first = client.Read(1);
    ASSERT_GE(first.size(), 3u);
    const int shard = first[1] - '0';
    const std::string rest = client.Read(std::string("[0 tls alice hello]").size() - first.size());
    EXPECT_EQ(first + rest, absl::StrFormat("[%d tls alice hello]", shard));
    // Two records in one write: the second arrives while the first hands off.
    client.Write("move:abc");
    client.Write("xyz");
    const std::string moved = absl::StrFormat("[%d tls alice moved:abc]", 1 - shard);
    const std::string echoed = absl::StrFormat("[%d tls alice xyz]", 1 - shard);
    EXPECT_EQ(client.Read(moved.size() + echoed.size()), moved + echoed);
  }
  {
    // A certificate from another CA: no plaintext ever reaches the handler.
    TlsClient rogue(port, Client("rogue"));
    ASSERT_TRUE(rogue.connected());
    rogue.Write("hello");
    EXPECT_EQ(rogue.Read(1), "");
  }
  (*group)->Stop();
  (*group)->Join();
}

TEST(TlsContextTest, ErrorsNameTheFlagAndFile) {
  Certs c;
  auto missing =
      TlsContext::CreateServer({"/nonexistent/cert.pem", c.Path("server.key"), "", false});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("--tls-cert \"/nonexistent/cert.pem\""),
            std::string::npos)
      << missing.status();
  auto mismatch = TlsContext::CreateServer({c.Path("server.pem"), c.Path("client.key"), "", false});
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.status().message().find("does not match"), std::string::npos)
      << mismatch.status();
  auto bad_ca = TlsContext::CreateServer(
      {c.Path("server.pem"), c.Path("server.key"), c.Path("server.key"), false});
  ASSERT_FALSE(bad_ca.ok());
  EXPECT_NE(bad_ca.status().message().find("--tls-ca"), std::string::npos) << bad_ca.status();
  auto no_ca = TlsContext::CreateServer({c.Path("server.pem"), c.Path("server.key"), "", true});
  ASSERT_FALSE(no_ca.ok());
}

}  // namespace
}  // namespace shardmq::shard
