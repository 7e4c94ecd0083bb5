// TlsSession over memory: a server and a client session exchange records by
// hand (no sockets), so handshake, data and refusal are tested without timing.
// Certificates are made with the openssl command line in a temp dir.
#include "shard/tls_session.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"

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
  server->Feed(Bytes(std::string("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c", 14)));
  uint8_t buf[64];
  EXPECT_EQ(server->Read(absl::MakeSpan(buf)), -1);
  EXPECT_TRUE(server->failed());
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
