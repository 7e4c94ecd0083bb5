// --max-memory: keeping queued messages of offline sessions only in the log
// and reading them back when their client returns (spill.h has the why).
#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "base/log.h"
#include "base/log_throttle.h"
#include "broker/broker_shard.h"
#include "broker/record_codec.h"
#include "broker/retained_recovery.h"
#include "broker/session_records.h"
#include "broker/spill_read.h"
#include "store/log_format.h"

namespace shardmq::broker {
namespace {

// Spilled entries a session reads ahead of its queue's front: enough to
// keep a fast client busy while the disk answers, few enough that a client
// with a million spilled messages does not bring them all back at once.
constexpr size_t kReadAhead = 64;

}  // namespace

BrokerShard::SpillFile::~SpillFile() {
  if (fd >= 0) ::close(fd);
}

void BrokerShard::StartSpilling() {
  spill_ = std::make_shared<SpillTable>(log_.get());
  log_->OnLocated([this](uint64_t sequence, uint64_t segment, uint64_t offset) {
    if (sequence == logged_message_sequence_) {
      logged_message_where_.segment = segment;
      logged_message_where_.offset = offset;
      logged_message_located_ = true;
    }
    spill_->Located(sequence, segment, offset);
  });
}

bool BrokerShard::ShouldSpill(const Session& session, const QueuedMessage& queued) const {
  // Only a copy whose MESSAGE record was just logged here can point at it;
  // a QoS 2 copy awaiting its publisher's commit (origin) may still be
  // dropped by recovery, and a shared-subscription copy may move to another
  // member: both stay in memory.
  if (context_.spill_budget == 0 || queued.log_item == 0 || session.connection != nullptr ||
      queued.shared_group != nullptr || queued.message->origin() != 0 || log_->failed() ||
      logged_message_.get() != queued.message.get() || logged_message_sequence_ == UINT64_MAX) {
    return false;
  }
  return queued_memory_ +
             QueuedMemoryCharge(queued.message->topic().size(), queued.message->payload().size()) >
         context_.spill_budget;
}

std::shared_ptr<SpilledBody> BrokerShard::SpillLoggedMessage() {
  // One body for all the copies of the message logged last.
  if (std::shared_ptr<SpilledBody> body = logged_message_spill_.lock()) return body;
  std::shared_ptr<SpilledBody> body = spill_->Make(spill_, logged_message_sequence_,
                                                   logged_message_where_, logged_message_located_);
  logged_message_spill_ = body;
  return body;
}

std::shared_ptr<SpilledBody> BrokerShard::SpillRecovered(const SpillLocation& where) {
  // A previous run's budget may have left messages in the log this run
  // (without one) still reads back.
  if (spill_ == nullptr) StartSpilling();
  ++spill_->copies;
  return spill_->MakeLocated(spill_, where);
}

void BrokerShard::ChargeQueued(const QueuedMessage& queued, bool add) {
  if (!queued.message) return;
  // `bytes` is topic + payload: no need to touch the (often cold) Message.
  const size_t charge = QueuedMemoryCharge(queued.bytes, 0);
  queued_memory_ =
      add ? queued_memory_ + charge : queued_memory_ - std::min(queued_memory_, charge);
}

void BrokerShard::ForgetQueue(Session& session) {
  for (QueuedMessage& queued : session.queue) {
    ChargeQueued(queued, false);
    if (queued.spilled != nullptr) --spill_->copies;
  }
  session.queue.Clear();
  session.queued_bytes = 0;
}

std::shared_ptr<BrokerShard::SpillFile> BrokerShard::OpenSpillFile(uint64_t segment,
                                                                   std::string* error) {
  if (auto it = spill_files_.find(segment); it != spill_files_.end()) return it->second;
  // Files of segments nothing pins any more may be gone: let them go (a
  // read on its way holds its own reference).
  const uint64_t floor = log_->kept_segments_from();
  absl::erase_if(spill_files_, [floor](const auto& entry) { return entry.first < floor; });
  // A local file's open is quick and rare here (once per segment read
  // from); io_uring reads do the rest.
  const std::string path = SpilledSegmentPath(log_->directory(), segment);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = absl::StrFormat("cannot open %s: %s", path, std::strerror(errno));
    return nullptr;
  }
  auto file = std::make_shared<SpillFile>(fd);
  spill_files_[segment] = file;
  return file;
}

void BrokerShard::LoadSpilled(Session& session) {
  size_t scanned = 0;
  bool wait_for_log = false;
  for (QueuedMessage& queued : session.queue) {
    if (scanned++ >= kReadAhead) break;
    if (queued.spilled == nullptr || queued.loading) continue;
    const SpilledBody& body = *queued.spilled;
    // Its record must be in the file before it can be read from there.
    const bool written = body.located && log_->durable_sequence() > body.sequence;
    if (!written && !log_->failed()) {
      wait_for_log = true;
      break;
    }
    std::string error = "its record never reached the disk";
    std::shared_ptr<SpillFile> file = written ? OpenSpillFile(body.where.segment, &error) : nullptr;
    queued.loading = true;
    if (file == nullptr) {
      OnSpillRead(session.client_id, &session, queued.spilled.get(), error, body.where, -EIO);
      return;  // OnSpillRead pumped the queue again
    }
    auto buffer = std::make_shared<std::string>(body.where.length, '\0');
    const absl::Span<uint8_t> into(reinterpret_cast<uint8_t*>(buffer->data()), buffer->size());
    shard_.ReadFile(file->fd, body.where.offset, into,
                    // Holding the body keeps its address from being reused
                    // by another entry's while the read is on its way.
                    [this, file, buffer, client_id = session.client_id, key = &session,
                     held = queued.spilled, where = body.where](int result) {
                      if (result >= 0) buffer->resize(static_cast<size_t>(result));
                      OnSpillRead(client_id, key, held.get(), *buffer, where, result);
                    });
  }
  if (wait_for_log) {
    log_->WhenDurable([this, client_id = session.client_id, key = &session](absl::Status) {
      auto it = sessions_.find(client_id);
      if (it != sessions_.end() && it->second.get() == key) PumpQueue(*it->second);
    });
  }
}

void BrokerShard::OnSpillRead(const std::string& client_id, const Session* key,
                              const SpilledBody* token, const std::string& bytes,
                              const SpillLocation& where, int result) {
  auto it = sessions_.find(client_id);
  if (it == sessions_.end() || it->second.get() != key) return;  // the session ended
  Session& session = *it->second;
  QueuedMessage* entry = nullptr;
  for (QueuedMessage& queued : session.queue) {
    if (queued.loading && queued.spilled.get() == token) {
      entry = &queued;
      break;
    }
  }
  if (entry == nullptr) return;
  MessageRef message;
  std::string why;
  if (result < 0) {
    why = bytes.empty() ? std::strerror(-result) : bytes;
  } else {
    absl::StatusOr<SessionRecord> record = ParseSpilledRecord(records::AsBytes(bytes), where);
    if (record.ok()) {
      message = RebuildMessage(record->message, WallNowNs(), shard_.Now(), record->commit);
      if (!message) why = "expired";
    } else {
      why = std::string(record.status().message());
    }
  }
  entry->loading = false;
  entry->spilled.reset();
  --spill_->copies;
  ShardStats::Inc(stats_.store_spill_reads);
  if (message) {
    entry->message = std::move(message);
    ChargeQueued(*entry, true);
  } else {
    // Gone for this client, as if delivered: PumpQueue skips the entry.
    LogItem(kRecordDone, entry->log_item);
    if (why == "expired") {
      ShardStats::Inc(stats_.dropped_expired);
    } else {
      ShardStats::Inc(stats_.store_spill_failures);
      SHARDMQ_LOG_THROTTLED(kError, "store: a message queued for %s is lost: reading it back: %s",
                            client_id, why);
    }
  }
  PumpQueue(session);
}

uint64_t BrokerShard::LogSpilledQueued(Session& session, const QueuedMessage& queued) {
  const SpilledBody& body = *queued.spilled;
  if (!session.logged || !body.located) return 0;
  const uint64_t number = next_log_number_++;
  record_scratch_.clear();
  EncodeMessageAt(number, body.where.segment, body.where.offset, body.where.length, body.where.body,
                  record_scratch_);
  AppendScratch(kRecordMessageAt);
  const uint64_t item = next_log_number_++;
  record_scratch_.clear();
  EncodeQueued(
      item, number, session.client_id, queued.qos, queued.retain,
      queued.shared_group != nullptr ? std::string_view(*queued.shared_group) : std::string_view(),
      queued.subscription_ids, record_scratch_);
  AppendScratch(kRecordQueued);
  return item;
}

}  // namespace shardmq::broker
