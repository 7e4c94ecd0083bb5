// Writes seeds for session_records_fuzz, made by the broker's own record
// encoders: one file per record type (a single record), and one session's
// whole life as a log (put, subscribe, a message queued, sent, released and
// done, QoS 2 ids, a will, offline, end) with retained records beside it.
// Records are framed as the fuzz target reads them:
//   selector u8 (index in its type table) | payload length u16 LE | payload
//
// Usage: session_records_corpus_gen <output-directory>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "broker/retained_records.h"
#include "broker/session_records.h"
#include "mqtt/properties.h"

namespace {

using namespace shardmq::broker;

// The same order as session_records_fuzz.cc's kTypes.
constexpr uint8_t kTypes[] = {
    kRecordSessionPut,  kRecordSessionOffline, kRecordSessionEnd,  kRecordSubscribe,
    kRecordUnsubscribe, kRecordMessage,        kRecordQueued,      kRecordSent,
    kRecordReleased,    kRecordDone,           kRecordInboundQos2, kRecordWill,
    kRecordWillDone,    kRecordRetainSet,      kRecordRetainClear,
};

uint8_t Selector(uint8_t type) {
  for (uint8_t i = 0; i < sizeof(kTypes); ++i) {
    if (kTypes[i] == type) return i;
  }
  return 0;
}

void Frame(uint8_t type, const std::string& payload, std::string& out) {
  out.push_back(static_cast<char>(Selector(type)));
  out.push_back(static_cast<char>(payload.size() & 0xFF));
  out.push_back(static_cast<char>((payload.size() >> 8) & 0xFF));
  out.append(payload);
}

bool WriteFile(const std::string& path, const std::string& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  return std::fclose(f) == 0 && ok;
}

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <output-directory>\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const int64_t wall = 1'767'225'600'000'000'000;  // 2026-01-01
  const std::string payload = "hello, durable world";
  shardmq::mqtt::Properties properties;
  properties.content_type = "text/plain";
  properties.user_properties.push_back({"k", "v"});
  shardmq::topic::SubscriptionOptions options;
  options.qos = 2;
  options.no_local = true;
  options.retain_handling = 1;
  options.subscription_id = 7;
  const std::vector<uint32_t> ids = {7, 9};

  // (type, payload) in the order of one session's life.
  std::vector<std::pair<uint8_t, std::string>> records;
  auto add = [&](uint8_t type, auto encode) {
    std::string p;
    encode(p);
    records.emplace_back(type, std::move(p));
  };
  add(kRecordSessionPut,
      [&](std::string& p) { EncodeSessionPut("c1", 3600, 5, std::string("alice"), 0, p); });
  add(kRecordSubscribe, [&](std::string& p) { EncodeSubscribe("c1", "a/+/c", options, p); });
  add(kRecordSubscribe, [&](std::string& p) { EncodeSubscribe("c1", "x/#", {}, p); });
  add(kRecordMessage, [&](std::string& p) {
    EncodeMessage(1, 0, "a/b/c", "pub", 2, true, wall + 60'000'000'000, &properties, Bytes(payload),
                  p);
  });
  add(kRecordMessage, [&](std::string& p) {
    EncodeMessage(2, 7, "x/y", "pub", 1, false, std::nullopt, nullptr, Bytes(payload), p);
  });
  add(kRecordQueued, [&](std::string& p) { EncodeQueued(3, 1, "c1", 2, true, "", ids, p); });
  add(kRecordQueued, [&](std::string& p) { EncodeQueued(4, 2, "c1", 1, false, "g", {}, p); });
  add(kRecordSent, [&](std::string& p) { EncodeSent(3, 17, p); });
  add(kRecordReleased, [&](std::string& p) { EncodeItemOnly(3, p); });
  add(kRecordInboundQos2, [&](std::string& p) { EncodeInboundQos2("c1", 5, true, 7, p); });
  add(kRecordWill, [&](std::string& p) {
    EncodeWill("c1", wall + 5'000'000'000, "will/c1", 1, false, std::nullopt, &properties,
               Bytes(payload), p);
  });
  add(kRecordSessionOffline, [&](std::string& p) { EncodeSessionOffline("c1", wall, 3600, p); });
  add(kRecordRetainSet, [&](std::string& p) {
    EncodeRetainSet(wall, "a/b/c", 1, wall + 1'000'000'000, &properties, Bytes(payload), p);
  });
  add(kRecordRetainClear, [&](std::string& p) { EncodeRetainClear(wall + 1, "x/y", p); });
  add(kRecordDone, [&](std::string& p) { EncodeItemOnly(3, p); });
  add(kRecordInboundQos2, [&](std::string& p) { EncodeInboundQos2("c1", 5, false, 0, p); });
  add(kRecordUnsubscribe, [&](std::string& p) { EncodeUnsubscribe("c1", "x/#", p); });
  add(kRecordWillDone, [&](std::string& p) { EncodeClientOnly("c1", p); });
  add(kRecordSessionEnd, [&](std::string& p) { EncodeClientOnly("c1", p); });

  int written = 0;
  auto write = [&](const std::string& bytes) {
    if (!WriteFile(dir + "/session-records-" + std::to_string(written++), bytes)) {
      std::perror(dir.c_str());
      return false;
    }
    return true;
  };
  std::string life;
  for (const auto& [type, p] : records) {
    std::string one;
    Frame(type, p, one);
    if (!write(one)) return 1;
    life += one;
  }
  // The whole life, and the life without its end (the session survives).
  if (!write(life)) return 1;
  std::string open;
  for (size_t i = 0; i + 1 < records.size(); ++i) Frame(records[i].first, records[i].second, open);
  return write(open) ? 0 : 1;
}
