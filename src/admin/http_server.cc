// AdminServer (shardmq/admin.h): cpp-httplib on its own threads. Handlers
// read the broker's lock-free counters or ask the shards through
// Broker::Gauges/Clients/Retained/DisconnectClient, which wait (bounded by
// query_timeout) for the shards' answers: the HTTP threads wait, the shards
// never do.
#include <arpa/inet.h>
#include <httplib.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "admin/json.h"
#include "admin/prometheus.h"
#include "base/log.h"
#include "net/listen_address.h"
#include "shardmq/admin.h"

namespace shardmq {
namespace {

int HttpStatusFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
      return 409;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

void SendJson(httplib::Response& res, int status, std::string body) {
  res.status = status;
  body.push_back('\n');
  res.set_content(body, "application/json");
}

void SendError(httplib::Response& res, const absl::Status& status) {
  SendJson(res, HttpStatusFor(status),
           absl::StrCat("{\"error\":", admin::JsonString(std::string(status.message())), "}"));
}

// Constant-time comparison: how long a refusal takes says nothing about
// how much of the token was right.
bool SameToken(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= a[i] ^ b[i % (b.empty() ? 1 : b.size())];
  return diff == 0 && !b.empty();
}

bool QueryBool(const httplib::Request& req, const char* name) {
  if (!req.has_param(name)) return false;
  const std::string value = req.get_param_value(name);
  return value.empty() || value == "1" || value == "true" || value == "yes";
}

void AppendClient(std::string& out, const ClientView& c) {
  absl::StrAppend(&out, "{\"client_id\":", admin::JsonString(c.client_id), ",\"shard\":", c.shard,
                  ",\"connected\":", c.connected ? "true" : "false",
                  ",\"inline\":", c.inline_client ? "true" : "false",
                  ",\"persistent\":", c.persistent ? "true" : "false",
                  ",\"address\":", admin::JsonString(c.address),
                  ",\"protocol_version\":", c.protocol_version,
                  ",\"username\":", admin::JsonString(c.username), ",\"keep_alive\":", c.keep_alive,
                  ",\"inflight\":", c.inflight, ",\"queued\":", c.queued,
                  ",\"queued_bytes\":", c.queued_bytes, ",\"subscriptions\":[");
  for (size_t i = 0; i < c.subscriptions.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ",",
                    "{\"filter\":", admin::JsonString(c.subscriptions[i].first),
                    ",\"qos\":", static_cast<int>(c.subscriptions[i].second), "}");
  }
  out += "]}";
}

void AppendRetained(std::string& out, const RetainedView& r) {
  absl::StrAppend(&out, "{\"topic\":", admin::JsonString(r.topic),
                  ",\"qos\":", static_cast<int>(r.qos), ",");
  admin::AppendJsonPayload(out, r.payload);
  out += "}";
}

}  // namespace

class AdminServer::Impl {
 public:
  Impl(Broker& broker, Options options, bool loopback, std::unique_ptr<httplib::Server> server,
       bool tls)
      : broker_(broker),
        options_(std::move(options)),
        loopback_(loopback),
        tls_(tls),
        server_holder_(std::move(server)),
        server_(*server_holder_) {}

  bool tls() const { return tls_; }

  absl::Status Bind(const std::string& host, int port) {
    server_.new_task_queue = [threads = options_.threads] {
      return new httplib::ThreadPool(std::max(1, threads));
    };
    server_.set_read_timeout(5, 0);
    server_.set_write_timeout(5, 0);
    server_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      return Authorize(req, res);
    });
    Routes();
    host_ = host;
    if (port == 0) {
      port_ = server_.bind_to_any_port(host);
      if (port_ < 0) port_ = 0;
    } else if (server_.bind_to_port(host, port)) {
      port_ = port;
    }
    if (port_ == 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("--http-listen=%s: cannot bind (in use, or not an address of this "
                          "host)",
                          options_.listen));
    }
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() before the thread is serving would be lost and Stop() would
    // join for ever: return once it serves.
    for (int i = 0; i < 2000 && !server_.is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return absl::OkStatus();
  }

  void Stop() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
    std::lock_guard<std::mutex> lock(client_mutex_);
    client_.reset();
  }

  std::string bound_address() const {
    return host_.find(':') != std::string::npos ? absl::StrCat("[", host_, "]:", port_)
                                                : absl::StrCat(host_, ":", port_);
  }

 private:
  using Handled = httplib::Server::HandlerResponse;

  Handled Authorize(const httplib::Request& req, httplib::Response& res) {
    if (options_.token.empty()) {
      if (loopback_) return Handled::Unhandled;
      SendJson(res, 403,
               "{\"error\":\"no --http-token is configured: the admin API serves only a "
               "loopback listener without one\"}");
      return Handled::Handled;
    }
    const std::string header = req.get_header_value("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (header.size() > kBearer.size() && header.compare(0, kBearer.size(), kBearer) == 0 &&
        SameToken(std::string_view(header).substr(kBearer.size()), options_.token)) {
      return Handled::Unhandled;
    }
    res.set_header("WWW-Authenticate", "Bearer realm=\"shardmq\"");
    SendJson(res, 401, "{\"error\":\"a valid bearer token is required\"}");
    return Handled::Handled;
  }

  void Routes() {
    server_.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
      // Healthy when every shard answers a question in time.
      absl::StatusOr<std::vector<ShardGauges>> gauges = broker_.Gauges(options_.query_timeout);
      res.status = gauges.ok() ? 200 : 503;
      res.set_content(gauges.ok() ? "ok\n" : absl::StrCat(gauges.status().message(), "\n"),
                      "text/plain");
    });
    server_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      admin::MetricsInput input;
      input.shards = broker_.StatsPerShard();
      absl::StatusOr<std::vector<ShardGauges>> gauges = broker_.Gauges(options_.query_timeout);
      if (gauges.ok()) input.gauges = *std::move(gauges);
      input.uptime_seconds = absl::ToDoubleSeconds(absl::Now() - started_);
      input.version = options_.version;
      input.cluster = broker_.cluster_stats();
      res.set_content(admin::RenderPrometheus(input), "text/plain; version=0.0.4");
    });
    server_.Get("/api/v1/broker",
                [this](const httplib::Request&, httplib::Response& res) { BrokerInfo(res); });
    server_.Get("/api/v1/clients", [this](const httplib::Request&, httplib::Response& res) {
      auto clients = broker_.Clients(options_.query_timeout);
      if (!clients.ok()) return SendError(res, clients.status());
      std::string body = "{\"clients\":[";
      for (size_t i = 0; i < clients->size(); ++i) {
        if (i > 0) body += ",";
        AppendClient(body, (*clients)[i]);
      }
      body += "]}";
      SendJson(res, 200, std::move(body));
    });
    server_.Get(R"(/api/v1/clients/(.+))",
                [this](const httplib::Request& req, httplib::Response& res) {
                  auto clients = broker_.Clients(options_.query_timeout, req.matches[1].str());
                  if (!clients.ok()) return SendError(res, clients.status());
                  std::string body;
                  AppendClient(body, clients->front());
                  SendJson(res, 200, std::move(body));
                });
    server_.Delete(
        R"(/api/v1/clients/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
          const std::string id = req.matches[1].str();
          const bool discard = QueryBool(req, "discard_session");
          absl::Status status = broker_.DisconnectClient(id, discard, options_.query_timeout);
          if (!status.ok()) return SendError(res, status);
          SendJson(res, 200,
                   absl::StrCat("{\"disconnected\":", admin::JsonString(id),
                                ",\"session_discarded\":", discard ? "true" : "false", "}"));
        });
    server_.Get("/api/v1/subscriptions", [this](const httplib::Request&, httplib::Response& res) {
      auto clients = broker_.Clients(options_.query_timeout);
      if (!clients.ok()) return SendError(res, clients.status());
      std::string body = "{\"subscriptions\":[";
      bool first = true;
      for (const ClientView& c : *clients) {
        for (const auto& [filter, qos] : c.subscriptions) {
          absl::StrAppend(
              &body, first ? "" : ",", "{\"client_id\":", admin::JsonString(c.client_id),
              ",\"filter\":", admin::JsonString(filter), ",\"qos\":", static_cast<int>(qos), "}");
          first = false;
        }
      }
      body += "]}";
      SendJson(res, 200, std::move(body));
    });
    server_.Post("/api/v1/publish", [this](const httplib::Request& req, httplib::Response& res) {
      Publish(req, res);
    });
    server_.Get("/api/v1/retained", [this](const httplib::Request& req, httplib::Response& res) {
      const std::string filter = req.has_param("filter") ? req.get_param_value("filter") : "#";
      auto retained = broker_.Retained(filter, options_.query_timeout);
      if (!retained.ok()) return SendError(res, retained.status());
      std::string body = "{\"retained\":[";
      for (size_t i = 0; i < retained->size(); ++i) {
        if (i > 0) body += ",";
        AppendRetained(body, (*retained)[i]);
      }
      body += "]}";
      SendJson(res, 200, std::move(body));
    });
    server_.Get(R"(/api/v1/retained/(.+))",
                [this](const httplib::Request& req, httplib::Response& res) {
                  absl::StatusOr<RetainedView> one = FindRetained(req.matches[1].str());
                  if (!one.ok()) return SendError(res, one.status());
                  std::string body;
                  AppendRetained(body, *one);
                  SendJson(res, 200, std::move(body));
                });
    server_.Delete(
        R"(/api/v1/retained/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
          const std::string topic = req.matches[1].str();
          absl::StatusOr<RetainedView> one = FindRetained(topic);
          if (!one.ok()) return SendError(res, one.status());
          // An empty retained message deletes it, on every shard.
          absl::Status status = WithClient(
              [&](InlineClient& client) { return client.Publish(topic, "", 0, /*retain=*/true); });
          if (!status.ok()) return SendError(res, status);
          SendJson(res, 200, absl::StrCat("{\"deleted\":", admin::JsonString(topic), "}"));
        });
  }

  absl::StatusOr<RetainedView> FindRetained(const std::string& topic) {
    if (topic.find_first_of("+#") != std::string::npos) {
      return absl::InvalidArgumentError("a topic name has no wildcards");
    }
    auto retained = broker_.Retained(topic, options_.query_timeout);
    if (!retained.ok()) return retained.status();
    if (retained->empty()) {
      return absl::NotFoundError(absl::StrFormat("no retained message on \"%s\"", topic));
    }
    return std::move(retained->front());
  }

  void BrokerInfo(httplib::Response& res) {
    const BrokerStats s = broker_.Stats();
    std::string body = absl::StrCat(
        "{\"version\":", admin::JsonString(options_.version),
        ",\"uptime_seconds\":", static_cast<int64_t>(absl::ToDoubleSeconds(absl::Now() - started_)),
        ",\"shards\":", broker_.shard_count(), ",\"listeners\":[");
    std::vector<std::string> listeners;
    for (const std::string& a : broker_.BoundAddresses()) listeners.push_back(admin::JsonString(a));
    absl::StrAppend(
        &body, absl::StrJoin(listeners, ","), "]", ",\"connections_open\":", s.connections_open,
        ",\"connections_accepted\":", s.connections_accepted, ",\"connects\":", s.connects,
        ",\"messages_received\":", s.messages_received, ",\"messages_sent\":", s.messages_sent,
        ",\"bytes_received\":", s.bytes_received, ",\"bytes_sent\":", s.bytes_sent);
    absl::StatusOr<std::vector<ShardGauges>> gauges = broker_.Gauges(options_.query_timeout);
    if (gauges.ok() && !gauges->empty()) {
      uint64_t connected = 0, sessions = 0, subscriptions = 0, inflight = 0, queued = 0;
      for (const ShardGauges& g : *gauges) {
        connected += g.clients_connected;
        sessions += g.sessions;
        subscriptions += g.subscriptions;
        inflight += g.inflight;
        queued += g.queued;
      }
      absl::StrAppend(&body, ",\"clients_connected\":", connected, ",\"sessions\":", sessions,
                      ",\"subscriptions\":", subscriptions, ",\"inflight\":", inflight,
                      ",\"queued\":", queued, ",\"retained\":", gauges->front().retained);
    }
    body += "}";
    SendJson(res, 200, std::move(body));
  }

  void Publish(const httplib::Request& req, httplib::Response& res) {
    if (!req.has_param("topic")) {
      return SendError(res, absl::InvalidArgumentError("?topic= is required"));
    }
    const std::string topic = req.get_param_value("topic");
    int qos = 0;
    if (req.has_param("qos") &&
        (!absl::SimpleAtoi(req.get_param_value("qos"), &qos) || qos < 0 || qos > 2)) {
      return SendError(res, absl::InvalidArgumentError("qos must be 0, 1 or 2"));
    }
    const bool retain = QueryBool(req, "retain");
    absl::Status status = WithClient([&](InlineClient& client) {
      return client.Publish(topic, req.body, static_cast<uint8_t>(qos), retain);
    });
    if (!status.ok()) return SendError(res, status);
    SendJson(res, 200,
             absl::StrCat("{\"published\":", admin::JsonString(topic), ",\"qos\":", qos,
                          ",\"retain\":", retain ? "true" : "false", ",\"bytes\":", req.body.size(),
                          "}"));
  }

  // Runs `f` with the admin's inline client, made on first use. Publishes
  // from several HTTP threads are serialised (they are cheap: a queued task).
  template <typename F>
  absl::Status WithClient(F&& f) {
    std::lock_guard<std::mutex> lock(client_mutex_);
    if (client_ == nullptr) {
      absl::StatusOr<std::unique_ptr<InlineClient>> client =
          broker_.NewInlineClient(options_.client_id);
      if (!client.ok()) return client.status();
      client_ = *std::move(client);
    }
    return f(*client_);
  }

  Broker& broker_;
  const Options options_;
  const bool loopback_;
  const bool tls_;
  const absl::Time started_ = absl::Now();
  // An httplib::SSLServer for https://, else a plain httplib::Server.
  std::unique_ptr<httplib::Server> server_holder_;
  httplib::Server& server_;
  std::string host_;
  int port_ = 0;
  std::thread thread_;
  std::mutex client_mutex_;
  std::unique_ptr<InlineClient> client_;  // guarded by client_mutex_
};

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(Broker& broker, Options options) {
  std::string_view address = options.listen;
  auto consume = [&address](std::string_view prefix) {
    if (address.substr(0, prefix.size()) != prefix) return false;
    address.remove_prefix(prefix.size());
    return true;
  };
  const bool tls = consume("https://");
  if (!tls) consume("http://");
  auto parsed = net::ParseListenAddress(address);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--http-listen=%s: %s", options.listen, parsed.status().message()));
  }
  if (parsed->transport != net::Transport::kTcp || address.find('?') != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--http-listen=%s: give host:port (HTTP) or https://host:port", options.listen));
  }
  std::unique_ptr<httplib::Server> server;
  if (tls) {
    if (options.tls_cert_file.empty() || options.tls_key_file.empty()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--http-listen=%s: HTTPS needs a certificate and key (--tls-cert, --tls-key)",
          options.listen));
    }
    auto ssl = std::make_unique<httplib::SSLServer>(options.tls_cert_file.c_str(),
                                                    options.tls_key_file.c_str());
    if (!ssl->is_valid()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--http-listen=%s: cannot load the certificate %s or key %s (PEM, matching)",
          options.listen, options.tls_cert_file, options.tls_key_file));
    }
    server = std::move(ssl);
  } else {
    server = std::make_unique<httplib::Server>();
  }
  auto [host, port] = net::NumericHostPort(*parsed);
  const bool loopback = net::IsLoopback(*parsed);
  if (options.token.empty() && !loopback) {
    SHARDMQ_LOG(kWarning,
                "admin HTTP on %s has no token: it refuses every request (give --http-token or "
                "--http-token-file, or listen on loopback)",
                options.listen);
  }
  auto impl = std::make_unique<Impl>(broker, std::move(options), loopback, std::move(server), tls);
  if (absl::Status status = impl->Bind(host, port); !status.ok()) return status;
  return std::unique_ptr<AdminServer>(new AdminServer(std::move(impl)));
}

AdminServer::AdminServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AdminServer::~AdminServer() { impl_->Stop(); }
std::string AdminServer::bound_address() const { return impl_->bound_address(); }
bool AdminServer::tls() const { return impl_->tls(); }

}  // namespace shardmq
