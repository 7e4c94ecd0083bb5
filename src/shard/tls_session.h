// TLS as a per-connection byte transform over OpenSSL memory BIOs.
//
// The socket I/O stays on io_uring: the reactor feeds received ciphertext in
// with Feed(), pulls plaintext out with Read(), pushes the handler's plaintext
// in with Write() and queues what DrainCiphertext() yields to the socket.
// Handshake records flow the same way, so a handshake never blocks a shard:
// it advances only when bytes arrive.
//
// Threading: a TlsContext (SSL_CTX) is shared by every shard and is only read
// after creation. A TlsSession is used by one thread at a time; it may move to
// another shard with its connection (hand-off).
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace shardmq::shard {

struct TlsConfig {
  std::string cert_file;  // PEM certificate chain (server: required)
  std::string key_file;   // PEM private key matching cert_file
  // PEM CA bundle. Server: client certificates are verified against it when
  // a client presents one. Client: the server certificate is verified.
  std::string ca_file;
  // Server only: refuse clients without a certificate the CA signed.
  bool require_client_cert = false;
};

class TlsContext {
 public:
  // Errors name the flag and the file, e.g.
  // `--tls-key "k.pem": the private key does not match the certificate`.
  static absl::StatusOr<std::shared_ptr<TlsContext>> CreateServer(const TlsConfig& config);
  // For tests and tools: a client context (cert/key optional).
  static absl::StatusOr<std::shared_ptr<TlsContext>> CreateClient(const TlsConfig& config);

  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* get() const { return ctx_; }
  bool server() const { return server_; }

 private:
  TlsContext(SSL_CTX* ctx, bool server) : ctx_(ctx), server_(server) {}
  SSL_CTX* ctx_;
  bool server_;
};

class TlsSession {
 public:
  // Keeps `context` alive as long as the session.
  static std::unique_ptr<TlsSession> Create(std::shared_ptr<const TlsContext> context);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Ciphertext received from the peer (copied into the read BIO).
  void Feed(absl::Span<const uint8_t> ciphertext);

  // Advances the handshake and decrypts. Returns plaintext bytes written to
  // `out` (> 0), 0 when more ciphertext is needed, -1 on a fatal error
  // (bad certificate, protocol error, peer alert; see error()). After a call
  // ciphertext may be waiting (handshake records, alerts): drain it.
  int Read(absl::Span<uint8_t> out);

  // Encrypts the handler's plaintext. Before the handshake completes it is
  // held and encrypted once the handshake is done. Returns false after a fatal
  // error.
  bool Write(absl::Span<const uint8_t> plaintext);

  // Queues a close_notify alert (best effort).
  void Shutdown();

  // True when the write BIO holds ciphertext for the socket.
  bool HasCiphertext() const;
  // Hands every pending ciphertext chunk to `sink` (chunks valid during the call).
  void DrainCiphertext(absl::FunctionRef<void(absl::Span<const uint8_t>)> sink);

  bool handshake_done() const { return handshake_done_; }
  bool failed() const { return failed_; }
  const std::string& error() const { return error_; }
  // The verified peer certificate's subject CN, else its first DNS SAN; empty
  // without a verified peer certificate. Set when the handshake completes.
  const std::string& peer_identity() const { return peer_identity_; }

 private:
  TlsSession(std::shared_ptr<const TlsContext> context, SSL* ssl, BIO* rbio, BIO* wbio);
  bool FlushPending();
  void Fail(int ssl_error);

  std::shared_ptr<const TlsContext> context_;
  SSL* ssl_;
  BIO* rbio_;  // owned by ssl_
  BIO* wbio_;  // owned by ssl_
  bool handshake_done_ = false;
  bool failed_ = false;
  std::string error_;
  std::string peer_identity_;
  std::string pending_plain_;  // Write() before the handshake completed
};

}  // namespace shardmq::shard
