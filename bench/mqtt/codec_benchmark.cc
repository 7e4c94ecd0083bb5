// Micro-benchmarks of the MQTT codec hot paths: decode and encode of PUBLISH
// (64-byte payload; 3.1.1, and 5.0 with topic alias, message expiry and a
// user property), CONNECT and SUBSCRIBE, plus the streaming decoder and the
// UTF-8 validator. Bytes processed = encoded packet bytes.
#include <cstdint>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/stream_decoder.h"
#include "mqtt/utf8.h"

namespace shardmq::mqtt {
namespace {

constexpr uint8_t kPayload[64] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
constexpr uint8_t kPassword[] = {'p', 'a', 's', 's', 'w', 'o', 'r', 'd'};

Publish MakePublish(ProtocolVersion v) {
  Publish p;
  p.topic = "sensors/building-7/floor-3/room-12/temperature";
  p.payload = kPayload;
  p.qos = 1;
  p.packet_id = 4242;
  if (v == ProtocolVersion::kV5) {
    p.properties.topic_alias = 12;
    p.properties.message_expiry_interval = 3600;
    p.properties.user_properties.emplace_back("trace-id", "0af7651916cd43dd8448eb211c80319c");
  }
  return p;
}

Connect MakeConnect(ProtocolVersion v) {
  Connect c;
  c.version = v;
  c.client_id = "device-0001-7f3a9c";
  c.keep_alive = 60;
  c.clean_start = true;
  c.username = "device-0001";
  c.password = kPassword;
  c.will.emplace();
  c.will->topic = "devices/device-0001/status";
  c.will->payload = kPayload;
  c.will->qos = 1;
  if (v == ProtocolVersion::kV5) {
    c.properties.session_expiry_interval = 3600;
    c.properties.receive_maximum = 100;
    c.properties.topic_alias_maximum = 16;
    c.will->properties.will_delay_interval = 5;
  }
  return c;
}

Subscribe MakeSubscribe(ProtocolVersion v) {
  Subscribe s;
  s.packet_id = 7;
  s.subscriptions.push_back({"sensors/+/temperature", {.qos = 1}});
  s.subscriptions.push_back({"alerts/#", {.qos = 2}});
  s.subscriptions.push_back({"devices/device-0001/cmd", {.qos = 1}});
  if (v == ProtocolVersion::kV5) {
    s.subscriptions[0].options.retain_handling = 1;
    s.properties.subscription_identifiers.push_back(42);
  }
  return s;
}

std::vector<uint8_t> EncodeToVector(const Packet& p, ProtocolVersion v) {
  std::vector<uint8_t> out(EncodedSize(p, v));
  Encode(p, v, absl::MakeSpan(out));
  return out;
}

template <class T>
void BenchDecode(benchmark::State& state, const T& packet, ProtocolVersion v) {
  const std::vector<uint8_t> bytes = EncodeToVector(packet, v);
  DecodeOptions o;
  o.version = std::is_same_v<T, Connect> ? ProtocolVersion::kUnknown : v;
  Packet out;
  for (auto _ : state) {
    DecodeResult r = DecodePacket(bytes, o, &out);
    benchmark::DoNotOptimize(r);
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes.size()));
  state.SetItemsProcessed(state.iterations());
}

template <class T>
void BenchEncode(benchmark::State& state, const T& packet, ProtocolVersion v) {
  std::vector<uint8_t> buf(EncodedSize(packet, v));
  for (auto _ : state) {
    const size_t size = EncodedSize(packet, v);
    size_t n = Encode(packet, v, absl::MakeSpan(buf.data(), size));
    benchmark::DoNotOptimize(n);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * buf.size()));
  state.SetItemsProcessed(state.iterations());
}

void BM_Decode_Publish311(benchmark::State& s) {
  BenchDecode(s, MakePublish(ProtocolVersion::kV311), ProtocolVersion::kV311);
}
void BM_Decode_Publish5(benchmark::State& s) {
  BenchDecode(s, MakePublish(ProtocolVersion::kV5), ProtocolVersion::kV5);
}
void BM_Encode_Publish311(benchmark::State& s) {
  BenchEncode(s, MakePublish(ProtocolVersion::kV311), ProtocolVersion::kV311);
}
void BM_Encode_Publish5(benchmark::State& s) {
  BenchEncode(s, MakePublish(ProtocolVersion::kV5), ProtocolVersion::kV5);
}
void BM_Decode_Connect311(benchmark::State& s) {
  BenchDecode(s, MakeConnect(ProtocolVersion::kV311), ProtocolVersion::kV311);
}
void BM_Decode_Connect5(benchmark::State& s) {
  BenchDecode(s, MakeConnect(ProtocolVersion::kV5), ProtocolVersion::kV5);
}
void BM_Encode_Connect311(benchmark::State& s) {
  BenchEncode(s, MakeConnect(ProtocolVersion::kV311), ProtocolVersion::kV311);
}
void BM_Encode_Connect5(benchmark::State& s) {
  BenchEncode(s, MakeConnect(ProtocolVersion::kV5), ProtocolVersion::kV5);
}
void BM_Decode_Subscribe311(benchmark::State& s) {
  BenchDecode(s, MakeSubscribe(ProtocolVersion::kV311), ProtocolVersion::kV311);
}
void BM_Decode_Subscribe5(benchmark::State& s) {
  BenchDecode(s, MakeSubscribe(ProtocolVersion::kV5), ProtocolVersion::kV5);
}
void BM_Encode_Subscribe311(benchmark::State& s) {
  BenchEncode(s, MakeSubscribe(ProtocolVersion::kV311), ProtocolVersion::kV311);
}
void BM_Encode_Subscribe5(benchmark::State& s) {
  BenchEncode(s, MakeSubscribe(ProtocolVersion::kV5), ProtocolVersion::kV5);
}

// Per-subscriber fan-out path: header only, payload sent by iovec.
void BM_EncodeHeader_Publish5(benchmark::State& state) {
  const Publish p = MakePublish(ProtocolVersion::kV5);
  uint8_t buf[256];
  for (auto _ : state) {
    size_t n = EncodePublishHeader(p, ProtocolVersion::kV5, absl::MakeSpan(buf));
    benchmark::DoNotOptimize(n);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(
      static_cast<int64_t>(state.iterations() * EncodedSize(p, ProtocolVersion::kV5)));
  state.SetItemsProcessed(state.iterations());
}

// 64 KiB receive buffers of back-to-back PUBLISH packets, as from a
// provided-buffer ring; state.range(0) = chunk size.
void BM_StreamDecode_Publish311(benchmark::State& state) {
  const std::vector<uint8_t> one =
      EncodeToVector(MakePublish(ProtocolVersion::kV311), ProtocolVersion::kV311);
  std::vector<uint8_t> stream;
  while (stream.size() + one.size() <= (1u << 20))
    stream.insert(stream.end(), one.begin(), one.end());
  const size_t chunk = static_cast<size_t>(state.range(0));
  size_t packets = 0;
  for (auto _ : state) {
    DecodeOptions o;
    o.version = ProtocolVersion::kV311;
    StreamDecoder dec(o);
    for (size_t pos = 0; pos < stream.size(); pos += chunk) {
      const size_t n = std::min(chunk, stream.size() - pos);
      dec.Feed(absl::MakeConstSpan(stream.data() + pos, n), [&](const Packet& p) {
        benchmark::DoNotOptimize(&p);
        ++packets;
        return true;
      });
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * stream.size()));
  state.SetItemsProcessed(static_cast<int64_t>(packets));
}

void BM_Utf8_Validate(benchmark::State& state) {
  std::string s;
  while (s.size() < static_cast<size_t>(state.range(0)))
    s += "sensors/b\xC3\xA9timent-7/temp\xE2\x82\xAC/";
  s.resize(static_cast<size_t>(state.range(0)));
  while (!IsValidMqttUtf8(s)) s.pop_back();
  for (auto _ : state) benchmark::DoNotOptimize(IsValidMqttUtf8(s));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * s.size()));
}

// A broker validates every PUBLISH topic with a level limit (--max-topic-levels
// defaults to 128), so the level count is on the hot path.
void BM_ValidateTopicName_LevelLimit(benchmark::State& state) {
  std::string s;
  while (s.size() < static_cast<size_t>(state.range(0))) s += "site/17/device/temp/";
  s.resize(static_cast<size_t>(state.range(0)));
  TopicLimits limits{.max_levels = 128};
  for (auto _ : state) benchmark::DoNotOptimize(ValidateTopicName(s, limits));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * s.size()));
}

BENCHMARK(BM_Decode_Publish311);
BENCHMARK(BM_Decode_Publish5);
BENCHMARK(BM_Encode_Publish311);
BENCHMARK(BM_Encode_Publish5);
BENCHMARK(BM_EncodeHeader_Publish5);
BENCHMARK(BM_Decode_Connect311);
BENCHMARK(BM_Decode_Connect5);
BENCHMARK(BM_Encode_Connect311);
BENCHMARK(BM_Encode_Connect5);
BENCHMARK(BM_Decode_Subscribe311);
BENCHMARK(BM_Decode_Subscribe5);
BENCHMARK(BM_Encode_Subscribe311);
BENCHMARK(BM_Encode_Subscribe5);
BENCHMARK(BM_StreamDecode_Publish311)->Arg(65536)->Arg(1500);
BENCHMARK(BM_Utf8_Validate)->Arg(48)->Arg(1024);
BENCHMARK(BM_ValidateTopicName_LevelLimit)->Arg(20)->Arg(64);

}  // namespace
}  // namespace shardmq::mqtt

BENCHMARK_MAIN();
