// shardmq::InlineClient: the calling thread's side. Every operation becomes a
// task in the home shard's external mailbox (shard/external_mailbox.h); the
// blocking ones wait for the shard's answer on a condition variable.
#include "shardmq/inline_client.h"

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/strings/str_format.h"
#include "base/log.h"
#include "broker/broker_link.h"
#include "broker/broker_shard.h"
#include "broker/client_id.h"
#include "mqtt/topic_validation.h"

namespace shardmq {

struct InlineClient::State {
  std::shared_ptr<broker::BrokerLink> link;
  std::string client_id;
  int home = 0;
};

namespace {

// How long a blocking call waits for its shard; far more than a loop turn,
// reached only when the broker is stopping under it.
constexpr auto kWaitLimit = std::chrono::seconds(10);

// One answer from a shard to a waiting thread.
class Waiter {
 public:
  void Finish(absl::StatusOr<uint8_t> result) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (done_) return;
    done_ = true;
    result_ = std::move(result);
    cv_.notify_all();
  }
  absl::StatusOr<uint8_t> Wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!cv_.wait_for(lock, kWaitLimit, [&] { return done_; })) {
      return absl::DeadlineExceededError("the broker did not answer (is it stopping?)");
    }
    return result_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  absl::StatusOr<uint8_t> result_ = absl::UnknownError("unset");
};

// Finishes the waiter with Unavailable if the task carrying it is destroyed
// unrun (the shard stopped first); a task that runs takes the waiter out.
struct WaiterGuard {
  std::shared_ptr<Waiter> waiter;
  explicit WaiterGuard(std::shared_ptr<Waiter> w) : waiter(std::move(w)) {}
  WaiterGuard(WaiterGuard&&) = default;
  ~WaiterGuard() {
    if (waiter != nullptr) waiter->Finish(absl::UnavailableError("the broker is stopping"));
  }
  broker::BrokerShard::InlineDone Take() {
    std::shared_ptr<Waiter> w = std::move(waiter);
    return [w](absl::StatusOr<uint8_t> result) { w->Finish(std::move(result)); };
  }
};

absl::Status NotOnShardThread(const char* what) {
  if (broker::OnShardThread()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "InlineClient::%s on a shard thread would wait on itself; call it from another thread",
        what));
  }
  return absl::OkStatus();
}

}  // namespace

InlineClient::InlineClient(std::shared_ptr<State> state) : state_(std::move(state)) {}

InlineClient::~InlineClient() {
  std::string client_id = state_->client_id;
  if (broker::OnShardThread()) {
    // Waiting here would wait on this very thread (or on a peer shard that
    // may be waiting on it): the session ends at the next loop turn instead.
    state_->link->Post(state_->home, [client_id](shard::ShardHandler& handler) {
      static_cast<broker::BrokerShard&>(handler).InlineClose(client_id, nullptr);
    });
    return;
  }
  // Wait for the home shard, so that no callback (and what it captured by
  // reference) is used after this returns. A stopping shard destroys the
  // task unrun when it leaves its loop, which ends the wait as well (no
  // callback runs after that either).
  auto waiter = std::make_shared<Waiter>();
  if (state_->link->Post(state_->home, [client_id, guard = WaiterGuard(waiter)](
                                           shard::ShardHandler& handler) mutable {
        static_cast<broker::BrokerShard&>(handler).InlineClose(client_id, guard.Take());
      })) {
    if (absl::StatusOr<uint8_t> closed = waiter->Wait();
        closed.status().code() == absl::StatusCode::kDeadlineExceeded) {
      // Only a shard stuck for seconds (a blocking hook) gets here.
      SHARDMQ_LOG(kError,
                  "inline client \"%s\": its shard did not end the session within %d s; its "
                  "callbacks may still run",
                  client_id, static_cast<int>(kWaitLimit.count()));
    }
  }
}

const std::string& InlineClient::client_id() const { return state_->client_id; }
int InlineClient::home_shard() const { return state_->home; }

absl::Status InlineClient::Publish(
    std::string_view topic, std::string_view payload, uint8_t qos, bool retain,
    std::vector<std::pair<std::string, std::string>> user_properties) {
  if (qos > 2) return absl::InvalidArgumentError(absl::StrFormat("qos=%d: must be 0, 1 or 2", qos));
  if (mqtt::ValidateTopicName(topic) != mqtt::TopicError::kOk) {
    return absl::InvalidArgumentError(absl::StrFormat("\"%s\" is not a topic name", topic));
  }
  auto request = std::make_unique<broker::InlinePublishRequest>();
  request->topic = std::string(topic);
  request->payload = std::string(payload);
  request->qos = qos;
  request->retain = retain;
  request->user_properties = std::move(user_properties);
  std::string client_id = state_->client_id;
  const bool posted = state_->link->Post(
      state_->home, [client_id, request = std::move(request)](shard::ShardHandler& handler) {
        static_cast<broker::BrokerShard&>(handler).InlinePublish(client_id, *request);
      });
  return posted ? absl::OkStatus() : absl::UnavailableError("the broker is not running");
}

absl::StatusOr<uint8_t> InlineClient::Subscribe(std::string_view filter, uint8_t qos,
                                                InlineCallback callback) {
  if (absl::Status status = NotOnShardThread("Subscribe"); !status.ok()) return status;
  if (qos > 2) return absl::InvalidArgumentError(absl::StrFormat("qos=%d: must be 0, 1 or 2", qos));
  auto waiter = std::make_shared<Waiter>();
  std::string client_id = state_->client_id;
  if (!state_->link->Post(
          state_->home,
          [client_id, filter = std::string(filter), qos, callback = std::move(callback),
           guard = WaiterGuard(waiter)](shard::ShardHandler& handler) mutable {
            static_cast<broker::BrokerShard&>(handler).InlineSubscribe(
                client_id, filter, qos, std::move(callback), guard.Take());
          })) {
    return absl::UnavailableError("the broker is not running");
  }
  return waiter->Wait();
}

absl::Status InlineClient::Unsubscribe(std::string_view filter) {
  if (absl::Status status = NotOnShardThread("Unsubscribe"); !status.ok()) return status;
  auto waiter = std::make_shared<Waiter>();
  std::string client_id = state_->client_id;
  if (!state_->link->Post(state_->home,
                          [client_id, filter = std::string(filter),
                           guard = WaiterGuard(waiter)](shard::ShardHandler& handler) mutable {
                            static_cast<broker::BrokerShard&>(handler).InlineUnsubscribe(
                                client_id, filter, guard.Take());
                          })) {
    return absl::UnavailableError("the broker is not running");
  }
  return waiter->Wait().status();
}

namespace broker {

absl::StatusOr<std::unique_ptr<InlineClient>> NewInlineClient(std::shared_ptr<BrokerLink> link,
                                                              std::string client_id,
                                                              int shard_count) {
  if (client_id.empty() || client_id.size() > 65535) {
    return absl::InvalidArgumentError("an inline client needs a client id of 1 to 65535 bytes");
  }
  if (OnShardThread()) return NotOnShardThread("NewInlineClient");
  auto state = std::make_shared<InlineClient::State>();
  state->link = std::move(link);
  state->client_id = std::move(client_id);
  state->home = HomeShard(state->client_id, shard_count);
  auto waiter = std::make_shared<Waiter>();
  auto sink = std::make_shared<InlineSink>();
  std::string id = state->client_id;
  if (!state->link->Post(state->home, [id, sink, guard = WaiterGuard(waiter)](
                                          shard::ShardHandler& handler) mutable {
        static_cast<BrokerShard&>(handler).InlineOpen(id, sink, guard.Take());
      })) {
    return absl::UnavailableError("the broker is not running");
  }
  absl::StatusOr<uint8_t> opened = waiter->Wait();
  if (!opened.ok()) return opened.status();
  return std::unique_ptr<InlineClient>(new InlineClient(std::move(state)));
}

}  // namespace broker
}  // namespace shardmq
