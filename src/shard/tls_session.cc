#include "shard/tls_session.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>

#include "absl/strings/str_format.h"

namespace shardmq::shard {
namespace {

// The newest queued OpenSSL error as text (and clears the queue so it does not
// leak into the next connection's diagnosis on this thread).
std::string OpenSslError() {
  unsigned long code = ERR_peek_last_error();
  std::string text = "unknown OpenSSL error";
  if (code != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    text = buf;
  }
  ERR_clear_error();
  return text;
}

absl::Status FileError(const char* flag, const std::string& file, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrFormat("--%s \"%s\": %s", flag, file, why));
}

absl::Status Configure(SSL_CTX* ctx, const TlsConfig& config, bool server) {
  // TLS 1.2 and 1.3 only: older versions have known weaknesses.
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // Idle connections give their record buffers back (tens of KiB each),
  // which matters at 100k+ mostly idle MQTT connections.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (!config.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, config.cert_file.c_str()) != 1) {
      return FileError("tls-cert", config.cert_file,
                       "cannot load the certificate chain: " + OpenSslError());
    }
  }
  if (!config.key_file.empty()) {
    if (SSL_CTX_use_PrivateKey_file(ctx, config.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      // OpenSSL 3 already compares the key with the certificate here.
      if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
        ERR_clear_error();
        return FileError("tls-key", config.key_file,
                         "the private key does not match the certificate in --tls-cert \"" +
                             config.cert_file + "\"");
      }
      return FileError("tls-key", config.key_file,
                       "cannot load the private key: " + OpenSslError());
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
      ERR_clear_error();
      return FileError("tls-key", config.key_file,
                       "the private key does not match the certificate in --tls-cert \"" +
                           config.cert_file + "\"");
    }
  }
  if (!config.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, config.ca_file.c_str(), nullptr) != 1) {
      return FileError("tls-ca", config.ca_file,
                       "cannot load the CA certificates: " + OpenSslError());
    }
  }
  if (server) {
    if (config.cert_file.empty() || config.key_file.empty()) {
      return absl::InvalidArgumentError("a TLS listener needs --tls-cert and --tls-key");
    }
    if (config.require_client_cert && config.ca_file.empty()) {
      return absl::InvalidArgumentError("--tls-require-client-cert needs --tls-ca");
    }
    if (!config.ca_file.empty()) {
      // Ask for a client certificate; without require_client_cert a client
      // may still connect without one, but one it presents must verify.
      int mode = SSL_VERIFY_PEER;
      if (config.require_client_cert) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
      SSL_CTX_set_verify(ctx, mode, nullptr);
      // Without a session id context, a client resuming a session on a
      // listener that verifies certificates fails its handshake.
      static constexpr unsigned char kSessionContext[] = "shardmq";
      SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof(kSessionContext) - 1);
      STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(config.ca_file.c_str());
      if (names != nullptr) SSL_CTX_set_client_CA_list(ctx, names);
      ERR_clear_error();
    }
    // Resumption uses stateless tickets; a server-side session cache would
    // keep every client's session (and certificate) in memory, shared by all
    // shards behind a lock.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  } else if (!config.ca_file.empty()) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }
  return absl::OkStatus();
}

std::string IdentityOf(X509* cert) {
  if (cert == nullptr) return {};
  char cn[256] = {};
  const int n =
      X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
  if (n > 0) return std::string(cn, static_cast<size_t>(n));
  std::string out;
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(sans, i);
      if (name->type == GEN_DNS) {
        const ASN1_IA5STRING* dns = name->d.dNSName;
        out.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                   static_cast<size_t>(ASN1_STRING_length(dns)));
        break;
      }
    }
    GENERAL_NAMES_free(sans);
  }
  return out;
}

}  // namespace

absl::StatusOr<std::shared_ptr<TlsContext>> TlsContext::CreateServer(const TlsConfig& config) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return absl::InternalError("SSL_CTX_new: " + OpenSslError());
  std::shared_ptr<TlsContext> result(new TlsContext(ctx, true));
  if (absl::Status s = Configure(ctx, config, true); !s.ok()) return s;
  return result;
}

absl::StatusOr<std::shared_ptr<TlsContext>> TlsContext::CreateClient(const TlsConfig& config) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return absl::InternalError("SSL_CTX_new: " + OpenSslError());
  std::shared_ptr<TlsContext> result(new TlsContext(ctx, false));
  if (absl::Status s = Configure(ctx, config, false); !s.ok()) return s;
  return result;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

std::unique_ptr<TlsSession> TlsSession::Create(std::shared_ptr<const TlsContext> context) {
  SSL* ssl = SSL_new(context->get());
  if (ssl == nullptr) return nullptr;
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  if (rbio == nullptr || wbio == nullptr) {
    BIO_free(rbio);
    BIO_free(wbio);
    SSL_free(ssl);
    return nullptr;
  }
  // An empty memory BIO reports "retry" instead of EOF, which is what turns
  // "no bytes yet" into SSL_ERROR_WANT_READ rather than a fatal error.
  BIO_set_mem_eof_return(rbio, -1);
  BIO_set_mem_eof_return(wbio, -1);
  SSL_set_bio(ssl, rbio, wbio);
  if (context->server()) {
    SSL_set_accept_state(ssl);
  } else {
    SSL_set_connect_state(ssl);
  }
  return std::unique_ptr<TlsSession>(new TlsSession(std::move(context), ssl, rbio, wbio));
}

TlsSession::TlsSession(std::shared_ptr<const TlsContext> context, SSL* ssl, BIO* rbio, BIO* wbio)
    : context_(std::move(context)), ssl_(ssl), rbio_(rbio), wbio_(wbio) {}

TlsSession::~TlsSession() { SSL_free(ssl_); }

void TlsSession::Feed(absl::Span<const uint8_t> ciphertext) {
  if (ciphertext.empty()) return;
  BIO_write(rbio_, ciphertext.data(), static_cast<int>(ciphertext.size()));
}

void TlsSession::Fail(int ssl_error) {
  failed_ = true;
  if (ssl_error == SSL_ERROR_ZERO_RETURN) {
    error_ = "peer sent close_notify";
  } else {
    error_ = OpenSslError();
    const long verify = SSL_get_verify_result(ssl_);
    if (verify != X509_V_OK) {
      error_ += absl::StrFormat(" (certificate: %s)", X509_verify_cert_error_string(verify));
    }
  }
}

int TlsSession::Read(absl::Span<uint8_t> out) {
  if (failed_) return -1;
  if (!handshake_done_) {
    const int r = SSL_do_handshake(ssl_);
    if (r != 1) {
      const int err = SSL_get_error(ssl_, r);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return 0;
      Fail(err);
      return -1;
    }
    handshake_done_ = true;
    X509* peer = SSL_get0_peer_certificate(ssl_);
    // Only a certificate that verified names the peer.
    if (peer != nullptr && SSL_get_verify_result(ssl_) == X509_V_OK) {
      peer_identity_ = IdentityOf(peer);
    }
    if (!FlushPending()) return -1;
  }
  if (out.empty()) return 0;
  const int n = SSL_read(ssl_, out.data(), static_cast<int>(std::min<size_t>(out.size(), 1 << 30)));
  if (n > 0) return n;
  const int err = SSL_get_error(ssl_, n);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return 0;
  Fail(err);
  return -1;
}

bool TlsSession::FlushPending() {
  if (pending_plain_.empty()) return true;
  std::string pending = std::move(pending_plain_);
  pending_plain_.clear();
  return Write(
      absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(pending.data()), pending.size()));
}

bool TlsSession::Write(absl::Span<const uint8_t> plaintext) {
  if (failed_) return false;
  if (!handshake_done_) {
    pending_plain_.append(reinterpret_cast<const char*>(plaintext.data()), plaintext.size());
    return true;
  }
  size_t pos = 0;
  while (pos < plaintext.size()) {
    const int chunk = static_cast<int>(std::min<size_t>(plaintext.size() - pos, 1 << 30));
    // The write BIO is memory and grows as needed, so SSL_write completes
    // whole (no partial writes, no WANT_WRITE).
    const int n = SSL_write(ssl_, plaintext.data() + pos, chunk);
    if (n <= 0) {
      Fail(SSL_get_error(ssl_, n));
      return false;
    }
    pos += static_cast<size_t>(n);
  }
  return true;
}

void TlsSession::Shutdown() {
  if (!failed_ && handshake_done_) SSL_shutdown(ssl_);
  ERR_clear_error();
}

bool TlsSession::HasCiphertext() const { return BIO_ctrl_pending(wbio_) > 0; }

void TlsSession::DrainCiphertext(absl::FunctionRef<void(absl::Span<const uint8_t>)> sink) {
  uint8_t buf[16 * 1024];
  while (BIO_ctrl_pending(wbio_) > 0) {
    const int n = BIO_read(wbio_, buf, sizeof(buf));
    if (n <= 0) break;
    sink(absl::Span<const uint8_t>(buf, static_cast<size_t>(n)));
  }
}

}  // namespace shardmq::shard
