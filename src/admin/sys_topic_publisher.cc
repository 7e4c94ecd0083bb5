// SysTopicPublisher (shardmq/admin.h): a thread that samples the broker
// every interval and publishes the $SYS values that changed.
#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "admin/sys_topics.h"
#include "base/log.h"
#include "shardmq/admin.h"

namespace shardmq {

class SysTopicPublisher::Impl {
 public:
  Impl(Broker& broker, Options options, std::unique_ptr<InlineClient> client)
      : broker_(broker), options_(std::move(options)), client_(std::move(client)) {}

  void Run() {
    const absl::Time started = absl::Now();
    absl::Time last = started;
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_) {
      lock.unlock();
      const absl::Time now = absl::Now();
      PublishOnce(now - started, now - last);
      last = now;
      lock.lock();
      cv_.wait_for(lock, absl::ToChronoMilliseconds(options_.interval), [&] { return stop_; });
    }
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
  }

  std::thread thread;

 private:
  void PublishOnce(absl::Duration uptime, absl::Duration elapsed) {
    const BrokerStats stats = broker_.Stats();
    load_.Update(stats, elapsed);
    // Gauges need every shard's answer; without them those topics wait for
    // the next round rather than publish zeros.
    absl::StatusOr<std::vector<ShardGauges>> gauges = broker_.Gauges(absl::Seconds(2));
    for (auto& [topic, value] :
         admin::SysTopicValues(stats, gauges.ok() ? &*gauges : nullptr, load_,
                               absl::ToDoubleSeconds(uptime), options_.version)) {
      std::string& before = published_[topic];
      if (before == value) continue;
      if (absl::Status status = client_->Publish(topic, value, /*qos=*/0, /*retain=*/true);
          !status.ok()) {
        return;  // the broker is stopping
      }
      before = std::move(value);
    }
  }

  Broker& broker_;
  const Options options_;
  std::unique_ptr<InlineClient> client_;
  admin::SysLoad load_;
  absl::flat_hash_map<std::string, std::string> published_;  // topic -> last value
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mutex_
};

absl::StatusOr<std::unique_ptr<SysTopicPublisher>> SysTopicPublisher::Start(Broker& broker,
                                                                            Options options) {
  if (options.interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("the $SYS interval must be positive");
  }
  absl::StatusOr<std::unique_ptr<InlineClient>> client = broker.NewInlineClient(options.client_id);
  if (!client.ok()) return client.status();
  auto impl = std::make_unique<Impl>(broker, std::move(options), *std::move(client));
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->Run(); });
  return std::unique_ptr<SysTopicPublisher>(new SysTopicPublisher(std::move(impl)));
}

SysTopicPublisher::SysTopicPublisher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SysTopicPublisher::~SysTopicPublisher() {
  impl_->Stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace shardmq
