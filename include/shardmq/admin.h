// shardmq/admin.h: an operator's view of a running Broker: $SYS topics and
// the admin HTTP server (Prometheus /metrics, /healthz, a JSON API).
//
// Both run on threads of their own and reach the shards only through the
// Broker's lock-free counters and its inspection calls (Broker::Gauges,
// Clients, ...), which ask each shard through its external mailbox and wait
// for the answer with a timeout: a shard never waits for them.
//
// Example (what the shardmq daemon does):
//   auto sys = shardmq::SysTopicPublisher::Start(*broker, {.interval = absl::Seconds(10)});
//   auto http = shardmq::AdminServer::Start(*broker, {.listen = "127.0.0.1:8080",
//                                                     .token = "s3cret"});
//   ... broker->Wait();
//   http->reset(); sys->reset();   // before the Broker goes
//
// Lifecycle: Start after Broker::Start(); destroy both before the Broker.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "shardmq/broker.h"

namespace shardmq {

// Publishes $SYS/broker/... (Mosquitto's layout; README lists them) as
// retained QoS 0 messages, every `interval`, through an inline client: they
// are routed like any message, so subscriptions and ACL read checks apply
// to them as to any topic. A value is published again only when it changed.
class SysTopicPublisher {
 public:
  struct Options {
    absl::Duration interval = absl::Seconds(10);
    std::string version;                    // for $SYS/broker/version
    std::string client_id = "shardmq-sys";  // the inline client's id
  };

  static absl::StatusOr<std::unique_ptr<SysTopicPublisher>> Start(Broker& broker, Options options);
  ~SysTopicPublisher();  // stops the thread and ends the inline client's session

  class Impl;

 private:
  explicit SysTopicPublisher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// HTTP on its own threads (cpp-httplib): /metrics (Prometheus text),
// /healthz and /api/v1/... (README.md lists the endpoints). Every request
// needs "Authorization: Bearer <token>" when a token is set; without one,
// every request is refused (403) unless `listen` is a loopback address.
class AdminServer {
 public:
  struct Options {
    // host:port or [v6]:port (plain HTTP), or https://host:port (HTTPS: needs
    // tls_cert_file and tls_key_file); port 0 picks one.
    std::string listen = "127.0.0.1:8080";
    std::string token;  // empty: loopback only, no token asked
    // PEM certificate chain and key for an https:// `listen` (TLS 1.2+,
    // OpenSSL through cpp-httplib). Serve the token over HTTPS whenever the
    // admin port is reachable from another host.
    std::string tls_cert_file;
    std::string tls_key_file;
    absl::Duration query_timeout = absl::Seconds(2);  // waiting for the shards
    std::string version;                              // reported by /api/v1/broker
    std::string client_id = "shardmq-admin";          // the inline client POST /publish uses
    int threads = 2;                                  // request handler threads
  };

  // Binds (errors name the address) and starts serving.
  static absl::StatusOr<std::unique_ptr<AdminServer>> Start(Broker& broker, Options options);
  ~AdminServer();  // stops serving and joins its threads

  // "127.0.0.1:8080", with the real port.
  std::string bound_address() const;
  // Whether it serves HTTPS.
  bool tls() const;

  class Impl;

 private:
  explicit AdminServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardmq
