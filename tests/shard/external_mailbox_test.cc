// ExternalMailbox and ShardGroup::PostExternal: many outside threads hand
// work to shards; every task runs exactly once, on its shard's thread, in
// each producer's order. Meant to run under ThreadSanitizer too.
#include "shard/external_mailbox.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "shard/shard_group.h"

namespace shardmq::shard {
namespace {

class NullHandler : public ShardHandler {
 public:
  explicit NullHandler(Shard& shard) : shard_(shard) {}
  void OnOpen(ConnId, const PeerInfo&, absl::Span<const uint8_t>) override {}
  void OnData(ConnId, absl::Span<const uint8_t>) override {}
  void OnClosed(ConnId, CloseReason, void*) override {}
  void OnMail(int, const MailItem&) override {}
  Shard& shard_;
  // Written only by tasks, which run on this shard's thread.
  std::vector<std::pair<int, int>> seen;  // (producer, sequence)
  std::thread::id thread;
};

TEST(ExternalMailbox, ManyProducersOneConsumerKeepEachProducersOrder) {
  ExternalMailbox mailbox;
  constexpr int kProducers = 4;
  constexpr int kPerProducer = 5000;
  std::vector<std::vector<int>> got(kProducers);  // consumer thread only
  std::atomic<int> wakes{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        if (mailbox.Push([&got, p, i](ShardHandler&) { got[p].push_back(i); }) ==
            ExternalMailbox::Pushed::kQueuedWake) {
          ++wakes;
        }
      }
    });
  }
  // The handler is never touched by these tasks; any object will do.
  struct Dummy : ShardHandler {
    void OnOpen(ConnId, const PeerInfo&, absl::Span<const uint8_t>) override {}
    void OnData(ConnId, absl::Span<const uint8_t>) override {}
    void OnClosed(ConnId, CloseReason, void*) override {}
    void OnMail(int, const MailItem&) override {}
  } dummy;
  size_t total = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (total < size_t{kProducers} * kPerProducer && std::chrono::steady_clock::now() < deadline) {
    total += mailbox.Drain(dummy);
  }
  for (auto& t : producers) t.join();
  total += mailbox.Drain(dummy);
  ASSERT_EQ(total, size_t{kProducers} * kPerProducer);
  for (int p = 0; p < kProducers; ++p) {
    ASSERT_EQ(got[p].size(), size_t{kPerProducer});
    for (int i = 0; i < kPerProducer; ++i) ASSERT_EQ(got[p][i], i) << "producer " << p;
  }
  // Only pushes onto an empty queue ask for a wake-up.
  EXPECT_GE(wakes.load(), 1);
  EXPECT_LE(wakes.load(), kProducers * kPerProducer);
  EXPECT_EQ(mailbox.size(), 0u);
}

TEST(ExternalMailbox, UnrunTasksAreDestroyed) {
  auto flag = std::make_shared<int>(0);
  {
    ExternalMailbox mailbox;
    mailbox.Push([flag](ShardHandler&) { ++*flag; });
    EXPECT_EQ(flag.use_count(), 2);
  }
  EXPECT_EQ(flag.use_count(), 1);
  EXPECT_EQ(*flag, 0);
}

// What a stopping shard does when it leaves its loop: queued tasks are
// destroyed unrun (so their waiters hear at once) and later ones refused.
TEST(ExternalMailbox, CloseDropsQueuedTasksAndRefusesLaterOnes) {
  ExternalMailbox mailbox;
  auto queued = std::make_shared<int>(0);
  EXPECT_EQ(mailbox.Push([queued](ShardHandler&) { ++*queued; }),
            ExternalMailbox::Pushed::kQueuedWake);
  EXPECT_EQ(mailbox.Push([queued](ShardHandler&) { ++*queued; }), ExternalMailbox::Pushed::kQueued);
  EXPECT_EQ(queued.use_count(), 3);
  EXPECT_EQ(mailbox.Close(), 2u);
  EXPECT_EQ(queued.use_count(), 1);
  EXPECT_EQ(*queued, 0);
  auto late = std::make_shared<int>(0);
  ExternalMailbox::Task task = [late](ShardHandler&) { ++*late; };
  EXPECT_EQ(mailbox.Push(std::move(task)), ExternalMailbox::Pushed::kRefused);
  // Refused: still the caller's, so nothing it captured was lost on the way.
  EXPECT_TRUE(static_cast<bool>(task));
  EXPECT_EQ(late.use_count(), 2);
  EXPECT_EQ(mailbox.size(), 0u);
}

TEST(ShardGroupPostExternal, TasksRunOnTheirShardThreadAndWakeASleepingShard) {
  ShardGroup::Options o;
  o.shard_count = 2;
  o.listeners = {{"127.0.0.1", 0}};
  std::mutex handlers_mutex;
  std::vector<NullHandler*> handlers(2, nullptr);
  auto group = ShardGroup::Create(o, [&](Shard& s) {
    auto h = std::make_unique<NullHandler>(s);
    std::lock_guard<std::mutex> lock(handlers_mutex);
    handlers[s.id()] = h.get();
    return h;
  });
  ASSERT_TRUE(group.ok()) << group.status();
  // Before Start nothing can run: refused.
  EXPECT_FALSE((*group)->PostExternal(0, [](ShardHandler&) {}));
  ASSERT_TRUE((*group)->Start().ok());

  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;
  std::atomic<int> ran{0};
  std::atomic<int> wrong_thread{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const int target = (t + i) % 2;
        ASSERT_TRUE((*group)->PostExternal(target, [&, t, i, target](ShardHandler& h) {
          auto& handler = static_cast<NullHandler&>(h);
          if (handler.shard_.id() != target) ++wrong_thread;
          if (handler.thread == std::thread::id()) handler.thread = std::this_thread::get_id();
          if (handler.thread != std::this_thread::get_id()) ++wrong_thread;
          handler.seen.emplace_back(t, i);
          ++ran;
        }));
        // Now and then let the shards fall asleep, so wake-ups are tested.
        if (i % 500 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
  }
  for (auto& t : threads) t.join();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (ran.load() < kThreads * kPerThread && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(ran.load(), kThreads * kPerThread);
  EXPECT_EQ(wrong_thread.load(), 0);
  // Every task has run (ran is read after each task's writes), so the shard
  // threads no longer touch `seen`: each producer's tasks ran in its order.
  for (NullHandler* handler : handlers) {
    std::vector<int> last(kThreads, -1);
    for (auto [producer, sequence] : handler->seen) {
      EXPECT_GT(sequence, last[producer]);
      last[producer] = sequence;
    }
  }
  // A single task to an idle (sleeping) shard still runs promptly.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::atomic<bool> late{false};
  const auto posted = std::chrono::steady_clock::now();
  ASSERT_TRUE((*group)->PostExternal(1, [&](ShardHandler&) { late = true; }));
  while (!late.load() && std::chrono::steady_clock::now() - posted < std::chrono::seconds(5)) {
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  EXPECT_TRUE(late.load());
  EXPECT_LT(std::chrono::steady_clock::now() - posted, std::chrono::seconds(1));
  (*group)->Stop();
  // Once a stopping shard has left its loop its tasks are refused at once,
  // before Join(): a thread waiting on one need not wait for the joiner.
  bool refused = false;
  for (int i = 0; i < 10'000 && !refused; ++i) {
    refused = !(*group)->PostExternal(0, [](ShardHandler&) {});
    if (!refused) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(refused);
  (*group)->Join();
  EXPECT_FALSE((*group)->PostExternal(0, [](ShardHandler&) {}));
}

}  // namespace
}  // namespace shardmq::shard
