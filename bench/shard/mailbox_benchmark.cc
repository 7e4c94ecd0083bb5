// BM_Mailbox_Throughput/<batch>: items per second through one SpscRing<MailItem>
// between two threads. The benchmark thread produces, publishing once per
// batch; a consumer thread drains in batches of up to 64.
#include <atomic>
#include <thread>

#include "benchmark/benchmark.h"
#include "shard/spsc_ring.h"
#include "shard/types.h"

namespace shardmq::shard {
namespace {

void BM_Mailbox_Throughput(benchmark::State& state) {
  const size_t batch = static_cast<size_t>(state.range(0));
  SpscRing<MailItem> ring(4096);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> consumed{0};
  std::thread consumer([&] {
    uint64_t n = 0, sum = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      n += ring.Drain(64, [&](const MailItem& m) { sum += m.arg; });
    }
    while (ring.Drain(64, [&](const MailItem& m) { sum += m.arg; }) > 0) {
    }
    benchmark::DoNotOptimize(sum);
    consumed.store(n, std::memory_order_relaxed);
  });
  uint64_t seq = 0;
  for (auto _ : state) {
    for (size_t i = 0; i < batch; ++i) {
      MailItem item{1, 0, nullptr, seq};
      while (!ring.TryPush(item)) {
        ring.Publish();  // full: make sure the consumer can see what is staged
      }
      ++seq;
    }
    ring.Publish();
  }
  stop.store(true, std::memory_order_relaxed);
  consumer.join();
  state.SetItemsProcessed(static_cast<int64_t>(seq));
}
BENCHMARK(BM_Mailbox_Throughput)->Arg(1)->Arg(16)->Arg(64)->UseRealTime();

// Uncontended cost: one thread pushes a batch, publishes, drains it. Shows the
// per-item cost of the ring itself without cross-core cache traffic or
// scheduling (useful on a loaded machine).
void BM_Mailbox_SameThread(benchmark::State& state) {
  const size_t batch = static_cast<size_t>(state.range(0));
  SpscRing<MailItem> ring(4096);
  uint64_t seq = 0, sum = 0;
  for (auto _ : state) {
    for (size_t i = 0; i < batch; ++i) ring.TryPush(MailItem{1, 0, nullptr, seq++});
    ring.Publish();
    ring.Drain(batch, [&](const MailItem& m) { sum += m.arg; });
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(static_cast<int64_t>(seq));
}
BENCHMARK(BM_Mailbox_SameThread)->Arg(1)->Arg(16)->Arg(64);

}  // namespace
}  // namespace shardmq::shard

BENCHMARK_MAIN();
