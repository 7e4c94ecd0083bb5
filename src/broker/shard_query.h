// QueryShards: a non-shard thread asks some shards one question each and
// waits (bounded) for every answer, the way the inspection calls of
// shardmq::Broker (Gauges, Clients, ...) and the admin HTTP API reach data
// that only a shard thread may touch.
//
// Each question is a task in the shard's external mailbox
// (shard/external_mailbox.h) that runs `ask` on the shard thread with its
// BrokerShard and hands the answer back under a mutex; the asking thread
// waits on a condition variable. The shard never waits for the asker: an
// asker that gave up (timeout) leaves a Reply the last task frees.
//
// Example:
//   auto sizes = QueryShards<size_t>(link, {0, 1}, absl::Seconds(1),
//                                    [](BrokerShard& s) { return s.SomeCount(); });
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "broker/broker_link.h"
#include "broker/broker_shard.h"
#include "broker/inline_sink.h"

namespace shardmq::broker {

template <typename T>
absl::StatusOr<std::vector<T>> QueryShards(BrokerLink& link, const std::vector<int>& shards,
                                           absl::Duration timeout,
                                           std::function<T(BrokerShard&)> ask) {
  if (OnShardThread()) {
    return absl::FailedPreconditionError(
        "asking the shards from a shard thread would wait on itself");
  }
  struct Reply {
    std::mutex mutex;
    std::condition_variable cv;
    std::vector<std::optional<T>> answers;
    size_t missing = 0;
    bool lost = false;  // a task was destroyed unrun: the broker is stopping
  };
  // Marks the reply lost if the task carrying it is destroyed unrun.
  struct Slot {
    std::shared_ptr<Reply> reply;
    size_t index = 0;
    bool answered = false;
    Slot(std::shared_ptr<Reply> r, size_t i) : reply(std::move(r)), index(i) {}
    Slot(Slot&& other) noexcept
        : reply(std::move(other.reply)), index(other.index), answered(other.answered) {}
    ~Slot() {
      if (reply == nullptr || answered) return;
      std::lock_guard<std::mutex> lock(reply->mutex);
      reply->lost = true;
      reply->cv.notify_all();
    }
    void Answer(T value) {
      answered = true;
      std::lock_guard<std::mutex> lock(reply->mutex);
      reply->answers[index] = std::move(value);
      --reply->missing;
      reply->cv.notify_all();
    }
  };
  auto reply = std::make_shared<Reply>();
  reply->answers.resize(shards.size());
  reply->missing = shards.size();
  auto shared_ask = std::make_shared<std::function<T(BrokerShard&)>>(std::move(ask));
  for (size_t i = 0; i < shards.size(); ++i) {
    const bool posted =
        link.Post(shards[i], [slot = Slot(reply, i), shared_ask](shard::ShardHandler& h) mutable {
          slot.Answer((*shared_ask)(static_cast<BrokerShard&>(h)));
        });
    if (!posted) return absl::UnavailableError("the broker is not running");
  }
  std::unique_lock<std::mutex> lock(reply->mutex);
  const bool done = reply->cv.wait_for(lock, absl::ToChronoMilliseconds(timeout),
                                       [&] { return reply->missing == 0 || reply->lost; });
  if (reply->lost) return absl::UnavailableError("the broker is stopping");
  if (!done) {
    return absl::DeadlineExceededError(
        absl::StrCat("shards did not answer within ", absl::FormatDuration(timeout)));
  }
  std::vector<T> out;
  out.reserve(shards.size());
  for (std::optional<T>& answer : reply->answers) out.push_back(std::move(*answer));
  return out;
}

}  // namespace shardmq::broker
