// See redis_link.h. hiredis's synchronous API; each connection belongs to
// one thread: the command thread (registration, heartbeat, the command FIFO,
// claims, adoption) and the inbox thread (BLPOP on inbox:<node>).
//
// Commands that were in flight when the connection broke are run again after
// the reconnect. Most are idempotent (HSET/HDEL, DEL, the ownership scripts).
// The ones that are not:
//   Push      the value may be queued twice (at least once);
//   Released  the answer may be sent twice (the claimer ignores the second);
//   Claim     if the first script ran but its reply was lost, the second run
//             sees this node as the owner already: it reports
//             previous_owner = this node and does not wait for the old
//             owner's answer;
//   the claim's read of s:/q:  if it ran but its reply was lost, the queue
//             it emptied is lost.
//
// After a reconnect the command thread re-asserts what this node owns (as
// far as its own claims, adoptions, Released and Forget went): an owner:
// key that is gone (a Redis that restarted empty) is set again, one that
// names another node drops the id from the node's list.
//
// hiredis writes to its sockets with write(2): the process must ignore
// SIGPIPE (shardmq_main does), or a write to a Redis that went away kills it.
#include "cluster/redis_link.h"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "absl/strings/str_format.h"
#include "base/log.h"

namespace shardmq::cluster {
namespace {

using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

constexpr Millis kConnectTimeout{1000};
// Long enough for a busy Redis, short enough to notice a dead one.
constexpr Millis kCommandTimeout{5000};
// BLPOP's own timeout: the inbox thread looks at `running_` this often even
// if Stop's shutdown(2) of its socket were missed.
constexpr std::string_view kBlpopSeconds = "1";
constexpr Millis kInboxReadTimeout{3000};
// Commands sent before reading their replies.
constexpr size_t kBatch = 512;
constexpr int64_t kMinBackoffMs = 100;
constexpr int64_t kMaxBackoffMs = 5000;
// On Stop, what is still in the FIFO gets this long to reach Redis.
constexpr Millis kStopDrain{500};

// Inbox entries: one type byte, then length-prefixed fields ("<len>:<bytes>"),
// so client ids may hold any byte.
constexpr char kTakeoverRequest = 'T';
constexpr char kReleasedAnswer = 'R';

struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;
struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;
using Args = std::vector<std::string>;

timeval ToTimeval(Millis ms) {
  timeval tv;
  tv.tv_sec = ms.count() / 1000;
  tv.tv_usec = (ms.count() % 1000) * 1000;
  return tv;
}

int64_t MonotonicNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

std::string_view View(const redisReply* r) { return std::string_view(r->str, r->len); }

bool IsString(const redisReply* r) {
  return r != nullptr && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

// Printable for logs: client ids are arbitrary bytes.
std::string Printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += absl::StrFormat("\\x%02x", c);
    }
  }
  return out;
}

struct RedisUrl {
  std::string host;
  int port = 6379;
  std::string user;
  std::string password;
  int db = -1;  // none: Redis's default, 0
};

bool ParseInt(std::string_view text, int min, int max, int* out) {
  if (text.empty()) return false;
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    return false;
  }
  *out = value;
  return true;
}

// The URL for messages: the password, if any, as "***".
std::string Redacted(std::string_view url) {
  const size_t start = url.find("://");
  const size_t at = url.rfind('@');
  if (start == std::string_view::npos || at == std::string_view::npos || at < start) {
    return std::string(url);
  }
  const size_t colon = url.find(':', start + 3);
  if (colon == std::string_view::npos || colon > at) return std::string(url);
  return absl::StrFormat("%s***%s", url.substr(0, colon + 1), url.substr(at));
}

absl::StatusOr<RedisUrl> ParseUrl(const std::string& url) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--cluster-redis=%s: %s (expected redis://[:password@]host:port[/db])",
                        Redacted(url), why));
  };
  constexpr std::string_view kScheme = "redis://";
  std::string_view rest = url;
  if (rest.substr(0, kScheme.size()) != kScheme) return bad("not a redis:// URL");
  rest.remove_prefix(kScheme.size());
  RedisUrl out;
  // The password may hold '@' and '/': the host starts after the last '@'.
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest.remove_prefix(at + 1);
    size_t colon = userinfo.find(':');
    if (colon == std::string_view::npos) return bad("the password must follow a ':'");
    out.user = std::string(userinfo.substr(0, colon));
    out.password = std::string(userinfo.substr(colon + 1));
    if (out.password.empty()) return bad("empty password");
  }
  std::string_view hostport = rest;
  std::string_view path;
  if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
    hostport = rest.substr(0, slash);
    path = rest.substr(slash + 1);
  }
  std::string_view port;
  bool has_port = false;
  if (!hostport.empty() && hostport.front() == '[') {  // [IPv6]:port
    size_t close = hostport.find(']');
    if (close == std::string_view::npos) return bad("unclosed '['");
    out.host = std::string(hostport.substr(1, close - 1));
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("junk after the address");
      port = after.substr(1);
      has_port = true;
    }
  } else if (size_t colon = hostport.find(':'); colon != std::string_view::npos) {
    out.host = std::string(hostport.substr(0, colon));
    port = hostport.substr(colon + 1);
    has_port = true;
  } else {
    out.host = std::string(hostport);
  }
  if (out.host.empty()) return bad("no host");
  if (has_port && !ParseInt(port, 1, 65535, &out.port)) return bad("bad port");
  if (!path.empty() && !ParseInt(path, 0, 1 << 20, &out.db)) return bad("bad database number");
  return out;
}

Reply RunCommand(redisContext* c, const Args& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  return Reply(static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(args.size()), argv.data(), lens.data())));
}

// Sends every command, then reads the replies in order into `replies`.
// Fewer replies than commands: the connection failed (c->err says why).
void Pipeline(redisContext* c, const std::vector<Args>& commands, std::vector<Reply>* replies) {
  replies->clear();
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const Args& args : commands) {
    argv.clear();
    lens.clear();
    for (const std::string& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    if (redisAppendCommandArgv(c, static_cast<int>(args.size()), argv.data(), lens.data()) !=
        REDIS_OK) {
      return;
    }
  }
  for (size_t i = 0; i < commands.size(); ++i) {
    void* reply = nullptr;
    if (redisGetReply(c, &reply) != REDIS_OK || reply == nullptr) return;
    replies->emplace_back(static_cast<redisReply*>(reply));
  }
}

std::string ContextError(redisContext* c) {
  return c->err != 0 ? std::string(c->errstr) : std::string("no reply");
}

absl::StatusOr<Context> Connect(const RedisUrl& url, Millis connect_timeout,
                                Millis command_timeout) {
  Context c(redisConnectWithTimeout(url.host.c_str(), url.port, ToTimeval(connect_timeout)));
  if (c == nullptr) return absl::ResourceExhaustedError("hiredis: out of memory");
  if (c->err != 0) {
    return absl::UnavailableError(
        absl::StrFormat("connecting to %s:%d: %s", url.host, url.port, c->errstr));
  }
  if (redisSetTimeout(c.get(), ToTimeval(command_timeout)) != REDIS_OK) {
    return absl::UnavailableError(absl::StrFormat("setting the timeout: %s", c->errstr));
  }
  auto check = [&](const Args& args, const char* what) -> absl::Status {
    Reply r = RunCommand(c.get(), args);
    if (r == nullptr) {
      return absl::UnavailableError(absl::StrFormat("%s: %s", what, ContextError(c.get())));
    }
    if (r->type == REDIS_REPLY_ERROR) {
      return absl::UnavailableError(absl::StrFormat("%s: %s", what, View(r.get())));
    }
    return absl::OkStatus();
  };
  if (!url.password.empty()) {
    Args auth = {"AUTH"};
    if (!url.user.empty()) auth.push_back(url.user);
    auth.push_back(url.password);
    if (absl::Status s = check(auth, "AUTH"); !s.ok()) return s;
  }
  if (url.db >= 0) {
    if (absl::Status s = check({"SELECT", std::to_string(url.db)}, "SELECT"); !s.ok()) return s;
  }
  return c;
}

void AppendField(std::string* out, std::string_view field) {
  out->append(std::to_string(field.size()));
  out->push_back(':');
  out->append(field);
}

std::string EncodeInbox(char type, std::string_view client, std::string_view node, uint64_t token) {
  std::string out(1, type);
  AppendField(&out, client);
  AppendField(&out, node);
  AppendField(&out, std::to_string(token));
  return out;
}

bool TakeField(std::string_view* in, std::string_view* field) {
  size_t colon = in->find(':');
  if (colon == std::string_view::npos || colon == 0 || colon > 10) return false;
  size_t len = 0;
  auto [end, ec] = std::from_chars(in->data(), in->data() + colon, len);
  if (ec != std::errc() || end != in->data() + colon || len > in->size() - colon - 1) return false;
  *field = in->substr(colon + 1, len);
  in->remove_prefix(colon + 1 + len);
  return true;
}

struct InboxEntry {
  char type = 0;
  std::string client;
  std::string node;
  uint64_t token = 0;
};

bool DecodeInbox(std::string_view in, InboxEntry* entry) {
  if (in.empty()) return false;
  entry->type = in.front();
  in.remove_prefix(1);
  std::string_view client, node, token;
  if (!TakeField(&in, &client) || !TakeField(&in, &node) || !TakeField(&in, &token) ||
      !in.empty()) {
    return false;
  }
  auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), entry->token);
  if (ec != std::errc() || end != token.data() + token.size()) return false;
  entry->client = std::string(client);
  entry->node = std::string(node);
  return true;
}

// --- Lua scripts (loaded with SCRIPT LOAD on every connection). ---

// KEYS: owner:<c>, owned:<me>. ARGV: me, client, prefix, takeover request.
// Takes the id; if another node that is alive owned it, asks it to let go.
// Returns {previous owner or "", 1 if the request was sent}.
constexpr std::string_view kClaimScript = R"lua(
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
if old and old ~= ARGV[1] then
  redis.call('SREM', ARGV[3] .. 'owned:' .. old, ARGV[2])
  if redis.call('EXISTS', ARGV[3] .. 'node:' .. old) == 1 then
    redis.call('RPUSH', ARGV[3] .. 'inbox:' .. old, ARGV[4])
    return {old, 1}
  end
  return {old, 0}
end
return {old or '', 0}
)lua";

// KEYS: owner:<c>, s:<c>, q:<c>. ARGV: me.
// 0 if another node owns the id now; else {HGETALL s, LRANGE q} and q emptied.
constexpr std::string_view kFinishClaimScript = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local s = redis.call('HGETALL', KEYS[2])
local q = redis.call('LRANGE', KEYS[3], 0, -1)
redis.call('DEL', KEYS[3])
return {s, q}
)lua";

// KEYS: owner:<c>, owned:<me>, s:<c>, node:<from>. ARGV: from, me, client,
// "1" to refuse while node:<from> exists. Moves the id from `from` to me if
// `from` still owns it: {1, HGETALL s}; else {0}.
constexpr std::string_view kAdoptScript = R"lua(
if ARGV[4] == '1' and redis.call('EXISTS', KEYS[4]) == 1 then return {0} end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  if ARGV[1] == ARGV[2] then redis.call('SREM', KEYS[2], ARGV[3]) end
  return {0}
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return {1, redis.call('HGETALL', KEYS[3])}
)lua";

// KEYS: owner:<c>, s:<c>. ARGV: me, field, value.
constexpr std::string_view kSetFieldScript = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
)lua";

// KEYS: owner:<c>, s:<c>. ARGV: me, field.
constexpr std::string_view kDeleteFieldScript = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[2])
return 1
)lua";

// KEYS: owner:<c>, s:<c>, q:<c>, owned:<me>. ARGV: me, client.
constexpr std::string_view kForgetScript = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('SREM', KEYS[4], ARGV[2])
return 1
)lua";

// KEYS: owner:<c>, owned:<me>. ARGV: me, client. After a reconnect: keeps
// (or, if Redis lost it, restores) this node's ownership; 0 if another node
// owns the id now.
constexpr std::string_view kReassertScript = R"lua(
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return 0 end
if not owner then redis.call('SET', KEYS[1], ARGV[1]) end
redis.call('SADD', KEYS[2], ARGV[2])
return 1
)lua";

// KEYS: nodes, owned:<dead>, inbox:<dead>, node:<dead>. ARGV: dead. After
// its sessions were adopted: forgets the node, unless it came back.
constexpr std::string_view kForgetNodeScript = R"lua(
if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3])
return 1
)lua";

enum Script : int {
  kClaim,
  kFinishClaim,
  kAdopt,
  kSetField,
  kDeleteField,
  kForget,
  kReassert,
  kForgetNode,
  kScripts
};
constexpr std::string_view kScriptText[kScripts] = {
    kClaimScript,       kFinishClaimScript, kAdoptScript,    kSetFieldScript,
    kDeleteFieldScript, kForgetScript,      kReassertScript, kForgetNodeScript};

// Errors after which the command is run again on a new connection (the
// script cache was flushed, Redis is loading or failing over). Any other
// error reply is the command's own fault and running it again would fail
// again: it is logged and dropped.
bool Transient(const redisReply* r) {
  std::string_view message = View(r);
  for (std::string_view prefix :
       {"NOSCRIPT", "LOADING", "READONLY", "MASTERDOWN", "BUSY", "TRYAGAIN", "CLUSTERDOWN"}) {
    if (message.substr(0, prefix.size()) == prefix) return true;
  }
  return false;
}

// HGETALL's flat array to pairs.
std::vector<std::pair<std::string, std::string>> Pairs(const redisReply* r) {
  std::vector<std::pair<std::string, std::string>> out;
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY) return out;
  for (size_t i = 0; i + 1 < r->elements; i += 2) {
    if (!IsString(r->element[i]) || !IsString(r->element[i + 1])) continue;
    out.emplace_back(std::string(View(r->element[i])), std::string(View(r->element[i + 1])));
  }
  return out;
}

// One command from the broker, in the FIFO.
struct RedisCommand {
  enum Kind : uint8_t {
    kClaim,
    kDrain,
    kReleased,
    kSetField,
    kDeleteField,
    kResetSession,
    kPush,
    kForget,
    kSetRetained,
    kClearRetained,
  };
  Kind kind;
  std::string name;  // the client id, or the topic
  std::string arg;   // field, or the node to answer
  std::string value;
  uint64_t number = 0;  // token, or max_length
};

}  // namespace

class RedisLink::Impl {
 public:
  Impl(const RedisLinkOptions& options, Events events, RedisUrl url)
      : options_(options), events_(std::move(events)), url_(std::move(url)) {
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  }
  ~Impl() {
    Stop(/*abandon=*/false);
    if (wake_fd_ >= 0) close(wake_fd_);
  }

  void Start() {
    std::lock_guard<std::mutex> lock(lifecycle_mutex_);
    if (started_) return;
    started_ = true;
    running_.store(true);
    command_thread_ = std::thread([this] { RunCommands(); });
    inbox_thread_ = std::thread([this] { RunInbox(); });
  }

  void Stop(bool abandon) {
    std::lock_guard<std::mutex> lock(lifecycle_mutex_);
    if (!running_.load()) return;
    abandon_.store(abandon);
    running_.store(false);
    Wake();
    {
      std::lock_guard<std::mutex> inbox_lock(inbox_mutex_);
      // Ends a BLPOP at once; the inbox thread closes the socket itself.
      if (inbox_fd_ >= 0) shutdown(inbox_fd_, SHUT_RDWR);
      inbox_stop_.notify_all();
    }
    if (command_thread_.joinable()) command_thread_.join();
    if (inbox_thread_.joinable()) inbox_thread_.join();
  }

  void Enqueue(RedisCommand command);

  RedisLinkStats Stats() const {
    RedisLinkStats s;
    s.commands = commands_.load(std::memory_order_relaxed);
    s.claims = claims_.load(std::memory_order_relaxed);
    s.takeovers_sent = takeovers_sent_.load(std::memory_order_relaxed);
    s.takeovers_received = takeovers_received_.load(std::memory_order_relaxed);
    s.takeover_timeouts = takeover_timeouts_.load(std::memory_order_relaxed);
    s.adopted = adopted_.load(std::memory_order_relaxed);
    s.dropped_pushes = dropped_pushes_.load(std::memory_order_relaxed);
    s.reconnects = reconnects_.load(std::memory_order_relaxed);
    s.connected = connected_.load(std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(mutex_);
    s.buffered = fifo_.size();
    return s;
  }

  std::string Key(std::string_view kind, std::string_view name) const {
    std::string key;
    key.reserve(options_.prefix.size() + kind.size() + name.size());
    key.append(options_.prefix);
    key.append(kind);
    key.append(name);
    return key;
  }

  const RedisUrl& url() const { return url_; }

 private:
  // A claim waiting for the old owner's answer, or ready to read the session.
  struct ClaimInProgress {
    std::string client;
    uint64_t token = 0;
    std::string previous_owner;
    Clock::time_point deadline;
  };
  struct Answer {
    std::string client;
    uint64_t token = 0;
  };

  void Wake() {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
  }
  void WaitWake(int64_t ms) {
    pollfd fd = {wake_fd_, POLLIN, 0};
    poll(&fd, 1, static_cast<int>(std::max<int64_t>(ms, 1)));
    uint64_t drained;
    [[maybe_unused]] ssize_t n = read(wake_fd_, &drained, sizeof(drained));
  }
  void NoteDrop();

  // Command thread.
  void RunCommands();
  bool ConnectCommands();
  bool Heartbeat();
  bool CheckDeadNodes();
  bool AdoptFrom(const std::string& node, bool check_alive);
  bool Reassert();
  void MatchAnswers();
  bool FinishClaims();
  bool RunBatch();
  // Appends the Redis commands `command` is made of; returns how many.
  size_t AppendArgs(const RedisCommand& command, std::vector<Args>* out) const;
  void Report(ClaimResult result);
  Millis Lease() const { return options_.lease; }
  // node:<id> lives two heartbeats (two thirds of a lease), and dead nodes
  // are looked for every quarter lease: a dead node's ownership is gone
  // within 2/3 + 1/4 of a lease, inside the lease the options promise.
  Millis KeyTtl() const { return Lease() * 2 / 3; }
  Millis CheckInterval() const { return Lease() / 4; }
  // Inbox thread.
  void RunInbox();
  void HandleInbox(std::string_view entry);

  const RedisLinkOptions& options_;
  Events events_;
  const RedisUrl url_;

  std::mutex lifecycle_mutex_;
  bool started_ = false;
  std::atomic<bool> running_{false};
  std::atomic<bool> abandon_{false};
  std::thread command_thread_;
  std::thread inbox_thread_;
  int wake_fd_ = -1;

  mutable std::mutex mutex_;
  std::deque<RedisCommand> fifo_;  // guarded by mutex_
  size_t fifo_pushes_ = 0;         // Push commands in fifo_; guarded by mutex_
  std::deque<Answer> answers_;     // guarded by mutex_
  bool sleeping_ = false;          // guarded by mutex_

  // The inbox thread's socket, for Stop to shut down.
  std::mutex inbox_mutex_;
  std::condition_variable inbox_stop_;
  int inbox_fd_ = -1;  // guarded by inbox_mutex_

  // Command thread only.
  Context commands_context_;
  std::string shas_[kScripts];
  bool self_adopted_ = false;
  // The client ids this node owns as far as its commands and claims went:
  // restored in Redis after a reconnect (a Redis that restarted empty).
  std::unordered_set<std::string> owned_;
  Clock::time_point next_heartbeat_;
  Clock::time_point next_check_;
  std::map<std::pair<std::string, uint64_t>, ClaimInProgress> waiting_;
  std::deque<ClaimInProgress> ready_;
  Clock::time_point last_failure_log_;
  uint64_t failed_since_log_ = 0;

  std::atomic<uint64_t> commands_{0};
  std::atomic<uint64_t> claims_{0};
  std::atomic<uint64_t> takeovers_sent_{0};
  std::atomic<uint64_t> takeovers_received_{0};
  std::atomic<uint64_t> takeover_timeouts_{0};
  std::atomic<uint64_t> adopted_{0};
  std::atomic<uint64_t> dropped_pushes_{0};
  std::atomic<uint64_t> reconnects_{0};
  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> last_drop_log_ns_{0};
};

void RedisLink::Impl::Enqueue(RedisCommand command) {
  bool wake;
  bool dropped = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const bool push = command.kind == RedisCommand::kPush;
    if (fifo_.size() >= options_.max_buffered && (push || fifo_pushes_ > 0)) {
      // Full: the oldest Push goes (this one if none is buffered); the
      // ownership and session commands are never dropped.
      dropped = true;
      if (fifo_pushes_ > 0) {
        auto it = std::find_if(fifo_.begin(), fifo_.end(),
                               [](const RedisCommand& c) { return c.kind == RedisCommand::kPush; });
        fifo_.erase(it);
        --fifo_pushes_;
        if (push) ++fifo_pushes_;
        fifo_.push_back(std::move(command));
      }
    } else {
      if (push) ++fifo_pushes_;
      fifo_.push_back(std::move(command));
    }
    wake = sleeping_;
    sleeping_ = false;
  }
  if (dropped) NoteDrop();
  if (wake) Wake();
}

void RedisLink::Impl::NoteDrop() {
  const uint64_t total = dropped_pushes_.fetch_add(1, std::memory_order_relaxed) + 1;
  // At most one line a second, whoever drops.
  const uint64_t now = static_cast<uint64_t>(MonotonicNs());
  uint64_t last = last_drop_log_ns_.load(std::memory_order_relaxed);
  if (now - last >= 1'000'000'000 &&
      last_drop_log_ns_.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
    SHARDMQ_LOG(kWarning,
                "cluster: Redis command buffer full (%u commands): dropped the oldest queued "
                "message; %u dropped so far",
                options_.max_buffered, total);
  }
}

size_t RedisLink::Impl::AppendArgs(const RedisCommand& c, std::vector<Args>* out) const {
  const std::string& me = options_.node_id;
  switch (c.kind) {
    case RedisCommand::kClaim:
      out->push_back({"EVALSHA", shas_[kClaim], "2", Key("owner:", c.name), Key("owned:", me), me,
                      c.name, options_.prefix,
                      EncodeInbox(kTakeoverRequest, c.name, me, c.number)});
      return 1;
    case RedisCommand::kDrain:
      // The read itself is FinishClaims' (a claim whose owner is this node
      // already); this only keeps the batch's replies one per command.
      out->push_back({"PING"});
      return 1;
    case RedisCommand::kReleased:
      out->push_back({"SREM", Key("owned:", me), c.name});
      out->push_back(
          {"RPUSH", Key("inbox:", c.arg), EncodeInbox(kReleasedAnswer, c.name, me, c.number)});
      return 2;
    case RedisCommand::kSetField:
      out->push_back({"EVALSHA", shas_[kSetField], "2", Key("owner:", c.name), Key("s:", c.name),
                      me, c.arg, c.value});
      return 1;
    case RedisCommand::kDeleteField:
      out->push_back({"EVALSHA", shas_[kDeleteField], "2", Key("owner:", c.name), Key("s:", c.name),
                      me, c.arg});
      return 1;
    case RedisCommand::kResetSession:
      out->push_back({"DEL", Key("s:", c.name), Key("q:", c.name)});
      return 1;
    case RedisCommand::kPush:
      out->push_back({"RPUSH", Key("q:", c.name), c.value});
      if (c.number == 0) return 1;  // 0: not trimmed
      out->push_back({"LTRIM", Key("q:", c.name), "-" + std::to_string(c.number), "-1"});
      return 2;
    case RedisCommand::kForget:
      out->push_back({"EVALSHA", shas_[kForget], "4", Key("owner:", c.name), Key("s:", c.name),
                      Key("q:", c.name), Key("owned:", me), me, c.name});
      return 1;
    case RedisCommand::kSetRetained:
      out->push_back({"HSET", Key("retained", ""), c.name, c.value});
      return 1;
    case RedisCommand::kClearRetained:
      out->push_back({"HDEL", Key("retained", ""), c.name});
      return 1;
  }
  return 0;
}

void RedisLink::Impl::Report(ClaimResult result) {
  claims_.fetch_add(1, std::memory_order_relaxed);
  if (events_.claimed) events_.claimed(std::move(result));
}

bool RedisLink::Impl::ConnectCommands() {
  absl::StatusOr<Context> c = Connect(url_, kConnectTimeout, kCommandTimeout);
  if (!c.ok()) {
    SHARDMQ_LOG(kWarning, "cluster: Redis at %s:%d: %s", url_.host, url_.port,
                c.status().message());
    return false;
  }
  commands_context_ = std::move(*c);
  redisContext* ctx = commands_context_.get();
  for (int i = 0; i < kScripts; ++i) {
    Reply r = RunCommand(ctx, {"SCRIPT", "LOAD", std::string(kScriptText[i])});
    if (!IsString(r.get()) || r->type == REDIS_REPLY_STATUS) {
      SHARDMQ_LOG(kWarning, "cluster: Redis: SCRIPT LOAD: %s",
                  r == nullptr ? ContextError(ctx) : std::string(View(r.get())));
      return false;
    }
    shas_[i] = std::string(View(r.get()));
  }
  if (!Heartbeat()) return false;
  // After a reconnect the first look for dead nodes waits a whole lease:
  // Redis itself may have been down (or restarted empty), so every node's
  // key may be gone, and the other live nodes need that long to renew
  // theirs.
  Millis first_check = CheckInterval();
  if (!self_adopted_) {
    // Sessions this node id owned before it (re)started.
    if (!AdoptFrom(options_.node_id, /*check_alive=*/false)) return false;
    self_adopted_ = true;
  } else if (!Reassert()) {
    return false;
  } else {
    first_check = Lease();
  }
  next_check_ = Clock::now() + first_check;
  return true;
}

bool RedisLink::Impl::Reassert() {
  std::vector<std::string> clients(owned_.begin(), owned_.end());
  size_t restored = 0;
  size_t lost = 0;
  for (size_t start = 0; start < clients.size(); start += kBatch) {
    const size_t end = std::min(clients.size(), start + kBatch);
    std::vector<Args> commands;
    for (size_t i = start; i < end; ++i) {
      commands.push_back({"EVALSHA", shas_[kReassert], "2", Key("owner:", clients[i]),
                          Key("owned:", options_.node_id), options_.node_id, clients[i]});
    }
    std::vector<Reply> replies;
    Pipeline(commands_context_.get(), commands, &replies);
    for (size_t i = 0; i < replies.size(); ++i) {
      const redisReply* r = replies[i].get();
      if (r->type == REDIS_REPLY_ERROR) {
        if (Transient(r)) return false;
        continue;
      }
      if (r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
        owned_.erase(clients[start + i]);  // another node's now
        ++lost;
      } else {
        ++restored;
      }
    }
    if (replies.size() != commands.size()) return false;
  }
  if (!clients.empty()) {
    SHARDMQ_LOG(kInfo, "cluster: Redis: %u sessions still this node's, %u taken by other nodes",
                restored, lost);
  }
  return true;
}

bool RedisLink::Impl::Heartbeat() {
  const std::string& me = options_.node_id;
  // The key first: a node is never in `nodes` without it when it joins.
  std::vector<Args> commands = {
      {"SET", Key("node:", me), "1", "PX", std::to_string(KeyTtl().count())},
      {"SADD", Key("nodes", ""), me}};
  std::vector<Reply> replies;
  Pipeline(commands_context_.get(), commands, &replies);
  if (replies.size() != commands.size()) {
    SHARDMQ_LOG(kWarning, "cluster: Redis: heartbeat: %s", ContextError(commands_context_.get()));
    return false;
  }
  for (const Reply& r : replies) {
    if (r->type == REDIS_REPLY_ERROR) {
      SHARDMQ_LOG(kWarning, "cluster: Redis: heartbeat: %s", View(r.get()));
      return false;
    }
  }
  next_heartbeat_ = Clock::now() + Lease() / 3;
  return true;
}

bool RedisLink::Impl::CheckDeadNodes() {
  redisContext* ctx = commands_context_.get();
  const std::string& me = options_.node_id;
  Reply members = RunCommand(ctx, {"SMEMBERS", Key("nodes", "")});
  if (members == nullptr) return false;
  if (members->type != REDIS_REPLY_ARRAY) return members->type != REDIS_REPLY_ERROR;
  std::vector<std::string> others;
  for (size_t i = 0; i < members->elements; ++i) {
    if (!IsString(members->element[i])) continue;
    std::string node(View(members->element[i]));
    if (node != me) others.push_back(std::move(node));
  }
  if (others.empty()) return true;
  std::vector<Args> exists;
  for (const std::string& node : others) exists.push_back({"EXISTS", Key("node:", node)});
  std::vector<Reply> replies;
  Pipeline(ctx, exists, &replies);
  if (replies.size() != exists.size()) return false;
  for (size_t i = 0; i < others.size(); ++i) {
    if (replies[i]->type != REDIS_REPLY_INTEGER || replies[i]->integer != 0) continue;
    const std::string& dead = others[i];
    Reply lock = RunCommand(
        ctx, {"SET", Key("adopt:", dead), me, "NX", "PX", std::to_string(Lease().count())});
    if (lock == nullptr) return false;
    if (lock->type != REDIS_REPLY_STATUS) continue;  // nil: another node adopts it
    SHARDMQ_LOG(kInfo, "cluster: node %s is gone; adopting its sessions", Printable(dead));
    if (!AdoptFrom(dead, /*check_alive=*/true)) return false;
    // Its inbox too: requests to it are answered by no one (their claims
    // complete after a lease anyway).
    Reply forget =
        RunCommand(ctx, {"EVALSHA", shas_[kForgetNode], "4", Key("nodes", ""), Key("owned:", dead),
                         Key("inbox:", dead), Key("node:", dead), dead});
    if (forget == nullptr || (forget->type == REDIS_REPLY_ERROR && Transient(forget.get()))) {
      return false;
    }
  }
  return true;
}

bool RedisLink::Impl::AdoptFrom(const std::string& node, bool check_alive) {
  redisContext* ctx = commands_context_.get();
  const std::string& me = options_.node_id;
  Reply owned = RunCommand(ctx, {"SMEMBERS", Key("owned:", node)});
  if (owned == nullptr) return false;
  if (owned->type != REDIS_REPLY_ARRAY) return owned->type != REDIS_REPLY_ERROR;
  std::vector<std::string> clients;
  for (size_t i = 0; i < owned->elements; ++i) {
    if (IsString(owned->element[i])) clients.emplace_back(View(owned->element[i]));
  }
  owned.reset();
  size_t count = 0;
  for (size_t start = 0; start < clients.size(); start += kBatch) {
    const size_t end = std::min(clients.size(), start + kBatch);
    std::vector<Args> commands;
    for (size_t i = start; i < end; ++i) {
      const std::string& client = clients[i];
      commands.push_back({"EVALSHA", shas_[kAdopt], "4", Key("owner:", client), Key("owned:", me),
                          Key("s:", client), Key("node:", node), node, me, client,
                          check_alive ? "1" : "0"});
    }
    std::vector<Reply> replies;
    Pipeline(ctx, commands, &replies);
    for (size_t i = 0; i < replies.size(); ++i) {
      const redisReply* r = replies[i].get();
      if (r->type == REDIS_REPLY_ERROR) {
        SHARDMQ_LOG(kWarning, "cluster: Redis: adopting %s: %s", Printable(clients[start + i]),
                    View(r));
        if (Transient(r)) return false;
        continue;
      }
      if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
          r->element[0]->type != REDIS_REPLY_INTEGER || r->element[0]->integer != 1) {
        continue;  // not `node`'s any more
      }
      SessionState state;
      state.fields = Pairs(r->element[1]);
      ++count;
      owned_.insert(clients[start + i]);
      if (node != me) adopted_.fetch_add(1, std::memory_order_relaxed);
      if (events_.adopted) events_.adopted(clients[start + i], std::move(state));
    }
    if (replies.size() != commands.size()) return false;
  }
  if (count > 0 || node != me) {
    SHARDMQ_LOG(kInfo, "cluster: adopted %u sessions of node %s", count, Printable(node));
  }
  return true;
}

void RedisLink::Impl::MatchAnswers() {
  std::deque<Answer> answers;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    answers.swap(answers_);
  }
  for (Answer& answer : answers) {
    auto it = waiting_.find({answer.client, answer.token});
    if (it == waiting_.end()) continue;  // timed out already, or a repeated answer
    ready_.push_back(std::move(it->second));
    waiting_.erase(it);
  }
  const Clock::time_point now = Clock::now();
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (it->second.deadline > now) {
      ++it;
      continue;
    }
    takeover_timeouts_.fetch_add(1, std::memory_order_relaxed);
    SHARDMQ_LOG(
        kWarning, "cluster: node %s did not release client id %s within %d ms; taking it over",
        Printable(it->second.previous_owner), Printable(it->second.client), Lease().count());
    ready_.push_back(std::move(it->second));
    it = waiting_.erase(it);
  }
}

bool RedisLink::Impl::FinishClaims() {
  while (!ready_.empty()) {
    const size_t n = std::min(ready_.size(), kBatch);
    std::vector<Args> commands;
    for (size_t i = 0; i < n; ++i) {
      const std::string& client = ready_[i].client;
      commands.push_back({"EVALSHA", shas_[kFinishClaim], "3", Key("owner:", client),
                          Key("s:", client), Key("q:", client), options_.node_id});
    }
    std::vector<Reply> replies;
    Pipeline(commands_context_.get(), commands, &replies);
    size_t done = 0;
    bool ok = replies.size() == commands.size();
    for (; done < replies.size(); ++done) {
      const redisReply* r = replies[done].get();
      ClaimInProgress& claim = ready_[done];
      if (r->type == REDIS_REPLY_ERROR && Transient(r)) {
        SHARDMQ_LOG(kWarning, "cluster: Redis: reading session %s: %s", Printable(claim.client),
                    View(r));
        ok = false;
        break;
      }
      ClaimResult result;
      result.client_id = std::move(claim.client);
      result.token = claim.token;
      result.previous_owner = std::move(claim.previous_owner);
      if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        result.state.fields = Pairs(r->element[0]);
        result.found = !result.state.fields.empty();
        const redisReply* q = r->element[1];
        if (q->type == REDIS_REPLY_ARRAY) {
          for (size_t i = 0; i < q->elements; ++i) {
            if (IsString(q->element[i])) result.state.queued.emplace_back(View(q->element[i]));
          }
        }
      } else {
        if (r->type == REDIS_REPLY_ERROR) {
          SHARDMQ_LOG(kWarning, "cluster: Redis: reading session %s: %s",
                      Printable(result.client_id), View(r));
        }
        result.won = false;  // another node owns it now
      }
      if (result.won) owned_.insert(result.client_id);
      Report(std::move(result));
    }
    ready_.erase(ready_.begin(), ready_.begin() + static_cast<ptrdiff_t>(done));
    if (!ok) return false;
  }
  return true;
}

bool RedisLink::Impl::RunBatch() {
  std::vector<RedisCommand> batch;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    while (!fifo_.empty() && batch.size() < kBatch) {
      if (fifo_.front().kind == RedisCommand::kPush) --fifo_pushes_;
      batch.push_back(std::move(fifo_.front()));
      fifo_.pop_front();
      // A claim that needs no answer reads the session before the commands
      // made after it run (a Push made after the Claim stays in q:).
      if (batch.back().kind == RedisCommand::kClaim || batch.back().kind == RedisCommand::kDrain) {
        break;
      }
    }
  }
  if (batch.empty()) return true;
  std::vector<Args> commands;
  std::vector<size_t> sizes;
  sizes.reserve(batch.size());
  for (const RedisCommand& c : batch) sizes.push_back(AppendArgs(c, &commands));
  std::vector<Reply> replies;
  Pipeline(commands_context_.get(), commands, &replies);
  size_t next_reply = 0;
  size_t done = 0;
  bool ok = true;
  for (; done < batch.size(); ++done) {
    const RedisCommand& c = batch[done];
    if (next_reply + sizes[done] > replies.size()) {
      ok = false;
      break;
    }
    const redisReply* error = nullptr;
    for (size_t i = 0; i < sizes[done]; ++i) {
      const redisReply* r = replies[next_reply + i].get();
      if (r->type == REDIS_REPLY_ERROR && error == nullptr) error = r;
    }
    const redisReply* first = replies[next_reply].get();
    if (error != nullptr && Transient(error)) {
      SHARDMQ_LOG(kWarning, "cluster: Redis: %s", View(error));
      ok = false;
      break;
    }
    next_reply += sizes[done];
    commands_.fetch_add(1, std::memory_order_relaxed);
    if (error != nullptr) {
      // The command's own fault (say a key of the wrong type): running it
      // again would fail again. At most one line a second.
      const Clock::time_point now = Clock::now();
      ++failed_since_log_;
      if (now - last_failure_log_ >= std::chrono::seconds(1)) {
        SHARDMQ_LOG(kWarning, "cluster: Redis: command for %s failed: %s (%u failed since)",
                    Printable(c.name), View(error), failed_since_log_);
        last_failure_log_ = now;
        failed_since_log_ = 0;
      }
    }
    if (c.kind == RedisCommand::kReleased || c.kind == RedisCommand::kForget) {
      owned_.erase(c.name);
    }
    if (c.kind == RedisCommand::kDrain) {
      ClaimInProgress drain;
      drain.client = c.name;
      drain.token = c.number;
      drain.previous_owner = options_.node_id;
      ready_.push_back(std::move(drain));
      continue;
    }
    if (c.kind != RedisCommand::kClaim) continue;
    if (error != nullptr || first->type != REDIS_REPLY_ARRAY || first->elements != 2 ||
        !IsString(first->element[0]) || first->element[1]->type != REDIS_REPLY_INTEGER) {
      ClaimResult result;
      result.client_id = c.name;
      result.token = c.number;
      result.won = false;
      Report(std::move(result));
      continue;
    }
    ClaimInProgress claim;
    claim.client = c.name;
    claim.token = c.number;
    claim.previous_owner = std::string(View(first->element[0]));
    if (first->element[1]->integer == 1) {
      takeovers_sent_.fetch_add(1, std::memory_order_relaxed);
      claim.deadline = Clock::now() + Lease();
      waiting_[{claim.client, claim.token}] = std::move(claim);
    } else {
      ready_.push_back(std::move(claim));
    }
  }
  if (done < batch.size()) {
    // Back to the front, in order: run again after the reconnect.
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = batch.size(); i-- > done;) {
      if (batch[i].kind == RedisCommand::kPush) ++fifo_pushes_;
      fifo_.push_front(std::move(batch[i]));
    }
  }
  if (!ok && commands_context_->err != 0) {
    SHARDMQ_LOG(kWarning, "cluster: Redis: %s", commands_context_->errstr);
  }
  return ok;
}

void RedisLink::Impl::RunCommands() {
  int64_t backoff_ms = kMinBackoffMs;
  bool ever_connected = false;
  while (running_.load()) {
    if (commands_context_ == nullptr) {
      if (!ConnectCommands()) {
        commands_context_.reset();
        WaitWake(backoff_ms);
        backoff_ms = std::min(backoff_ms * 2, kMaxBackoffMs);
        continue;
      }
      if (ever_connected) reconnects_.fetch_add(1, std::memory_order_relaxed);
      ever_connected = true;
      connected_.store(true, std::memory_order_relaxed);
      SHARDMQ_LOG(kInfo, "cluster: connected to Redis at %s:%d as node %s", url_.host, url_.port,
                  Printable(options_.node_id));
    }
    bool ok = true;
    Clock::time_point now = Clock::now();
    if (now >= next_heartbeat_) ok = Heartbeat();
    if (ok && now >= next_check_) {
      ok = CheckDeadNodes();
      next_check_ = Clock::now() + CheckInterval();
    }
    if (ok) MatchAnswers();
    if (ok) ok = FinishClaims();
    if (ok) ok = RunBatch();
    if (!ok) {
      SHARDMQ_LOG(kWarning, "cluster: lost Redis; %u commands buffered", [&] {
        std::lock_guard<std::mutex> lock(mutex_);
        return fifo_.size();
      }());
      commands_context_.reset();
      connected_.store(false, std::memory_order_relaxed);
      // Not at once: a Redis that answers with errors (loading, busy)
      // would have us reconnect in a loop.
      WaitWake(backoff_ms);
      backoff_ms = std::min(backoff_ms * 2, kMaxBackoffMs);
      continue;
    }
    backoff_ms = kMinBackoffMs;
    bool idle;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      idle = fifo_.empty() && answers_.empty();
      // Writers wake us only while we sleep (or are about to).
      sleeping_ = idle;
    }
    if (idle && ready_.empty()) {
      Clock::time_point until = std::min(next_heartbeat_, next_check_);
      for (const auto& [key, claim] : waiting_) until = std::min(until, claim.deadline);
      const int64_t ms = std::chrono::duration_cast<Millis>(until - Clock::now()).count() + 1;
      if (ms > 0) WaitWake(ms);
    }
    std::lock_guard<std::mutex> lock(mutex_);
    sleeping_ = false;
  }
  // Stopping.
  size_t left_claims = waiting_.size() + ready_.size();
  if (commands_context_ != nullptr && !abandon_.load()) {
    // What is buffered gets a short while to reach Redis.
    const Clock::time_point deadline = Clock::now() + kStopDrain;
    bool ok = true;
    while (ok && Clock::now() < deadline) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (fifo_.empty()) break;
      }
      ok = RunBatch();
    }
    // Claims made but not reported are dropped: the broker is stopping.
    Reply r = RunCommand(commands_context_.get(), {"DEL", Key("node:", options_.node_id)});
    (void)r;
  }
  commands_context_.reset();
  connected_.store(false, std::memory_order_relaxed);
  size_t left;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    left = fifo_.size();
  }
  const RedisLinkStats stats = Stats();
  SHARDMQ_LOG(kInfo,
              "cluster: Redis link stopped%s; %u commands, %u claims, %u takeovers sent, %u "
              "received, %u timed out, %u sessions adopted, %u reconnects, %u pushes dropped, "
              "%u commands and %u claims left",
              abandon_.load() ? " (abandoned)" : "", stats.commands, stats.claims,
              stats.takeovers_sent, stats.takeovers_received, stats.takeover_timeouts,
              stats.adopted, stats.reconnects, stats.dropped_pushes, left, left_claims);
}

void RedisLink::Impl::RunInbox() {
  int64_t backoff_ms = kMinBackoffMs;
  const std::string inbox = Key("inbox:", options_.node_id);
  Context context;
  auto drop = [&] {
    std::lock_guard<std::mutex> lock(inbox_mutex_);
    inbox_fd_ = -1;
    context.reset();
  };
  while (running_.load()) {
    if (context == nullptr) {
      absl::StatusOr<Context> c = Connect(url_, kConnectTimeout, kInboxReadTimeout);
      if (!c.ok()) {
        std::unique_lock<std::mutex> lock(inbox_mutex_);
        inbox_stop_.wait_for(lock, Millis(backoff_ms), [&] { return !running_.load(); });
        backoff_ms = std::min(backoff_ms * 2, kMaxBackoffMs);
        continue;
      }
      std::lock_guard<std::mutex> lock(inbox_mutex_);
      if (!running_.load()) break;  // Stop ran while connecting: it saw no socket
      context = std::move(*c);
      inbox_fd_ = context->fd;
    }
    Reply r = RunCommand(context.get(), {"BLPOP", inbox, std::string(kBlpopSeconds)});
    if (r == nullptr || r->type == REDIS_REPLY_ERROR) {
      if (running_.load()) {
        SHARDMQ_LOG(kWarning, "cluster: Redis: waiting on %s: %s", Printable(inbox),
                    r == nullptr ? ContextError(context.get()) : std::string(View(r.get())));
      }
      drop();
      // Not at once: a Redis that answers with errors would have us
      // reconnect in a loop.
      std::unique_lock<std::mutex> lock(inbox_mutex_);
      inbox_stop_.wait_for(lock, Millis(backoff_ms), [&] { return !running_.load(); });
      backoff_ms = std::min(backoff_ms * 2, kMaxBackoffMs);
      continue;
    }
    backoff_ms = kMinBackoffMs;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && IsString(r->element[1])) {
      HandleInbox(View(r->element[1]));
    }
  }
  drop();
}

void RedisLink::Impl::HandleInbox(std::string_view entry) {
  InboxEntry e;
  if (!DecodeInbox(entry, &e) || (e.type != kTakeoverRequest && e.type != kReleasedAnswer)) {
    SHARDMQ_LOG(kWarning, "cluster: Redis: ignoring a malformed inbox entry (%u bytes)",
                entry.size());
    return;
  }
  if (e.type == kTakeoverRequest) {
    takeovers_received_.fetch_add(1, std::memory_order_relaxed);
    if (events_.takeover_requested) {
      events_.takeover_requested(std::move(e.client), std::move(e.node), e.token);
    }
    return;
  }
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    answers_.push_back({std::move(e.client), e.token});
    wake = sleeping_;
    sleeping_ = false;
  }
  if (wake) Wake();
}

// --- RedisLink ---

absl::StatusOr<std::unique_ptr<RedisLink>> RedisLink::Create(RedisLinkOptions options,
                                                             Events events) {
  absl::StatusOr<RedisUrl> url = ParseUrl(options.url);
  if (!url.ok()) return url.status();
  if (options.node_id.empty() || options.node_id.size() > 200) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--node-id=%s: must be 1 to 200 bytes", options.node_id));
  }
  if (options.lease < Millis(100)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cluster lease of %d ms: must be at least 100 ms", options.lease.count()));
  }
  if (options.max_buffered == 0) {
    return absl::InvalidArgumentError("cluster buffer of 0 commands: must be at least 1");
  }
  return std::unique_ptr<RedisLink>(new RedisLink(std::move(options), std::move(events)));
}

RedisLink::RedisLink(RedisLinkOptions options, Events events)
    : options_(std::move(options)),
      // Create checked the URL.
      impl_(std::make_unique<Impl>(options_, std::move(events), *ParseUrl(options_.url))) {}

RedisLink::~RedisLink() { impl_->Stop(/*abandon=*/false); }

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> RedisLink::LoadRetained(
    std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  absl::StatusOr<Context> c = Connect(impl_->url(), timeout, timeout);
  if (!c.ok()) {
    return absl::UnavailableError(
        absl::StrFormat("--cluster-redis: loading retained messages: %s", c.status().message()));
  }
  std::vector<std::pair<std::string, std::string>> out;
  std::unordered_set<std::string> seen;  // HSCAN may return an entry twice
  const std::string key = impl_->Key("retained", "");
  std::string cursor = "0";
  do {
    if (Clock::now() > deadline) {
      return absl::DeadlineExceededError(absl::StrFormat(
          "--cluster-redis: loading retained messages took over %d ms", timeout.count()));
    }
    Reply r = RunCommand(c->get(), {"HSCAN", key, cursor, "COUNT", "1000"});
    if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        !IsString(r->element[0]) || r->element[1]->type != REDIS_REPLY_ARRAY) {
      return absl::UnavailableError(
          absl::StrFormat("--cluster-redis: loading retained messages: %s",
                          r == nullptr                   ? ContextError(c->get())
                          : r->type == REDIS_REPLY_ERROR ? std::string(View(r.get()))
                                                         : std::string("unexpected HSCAN reply")));
    }
    cursor = std::string(View(r->element[0]));
    for (auto& pair : Pairs(r->element[1])) {
      if (seen.insert(pair.first).second) out.push_back(std::move(pair));
    }
  } while (cursor != "0");
  return out;
}

void RedisLink::Start() { impl_->Start(); }
void RedisLink::Stop() { impl_->Stop(/*abandon=*/false); }
void RedisLink::AbandonForTest() { impl_->Stop(/*abandon=*/true); }

void RedisLink::Claim(std::string_view client_id, uint64_t token) {
  impl_->Enqueue({RedisCommand::kClaim, std::string(client_id), {}, {}, token});
}

void RedisLink::Drain(std::string_view client_id, uint64_t token) {
  impl_->Enqueue({RedisCommand::kDrain, std::string(client_id), {}, {}, token});
}

void RedisLink::Released(std::string_view client_id, std::string_view to_node, uint64_t token) {
  impl_->Enqueue(
      {RedisCommand::kReleased, std::string(client_id), std::string(to_node), {}, token});
}

void RedisLink::SetField(std::string_view client_id, std::string_view field, std::string value) {
  impl_->Enqueue(
      {RedisCommand::kSetField, std::string(client_id), std::string(field), std::move(value)});
}

void RedisLink::DeleteField(std::string_view client_id, std::string_view field) {
  impl_->Enqueue({RedisCommand::kDeleteField, std::string(client_id), std::string(field), {}});
}

void RedisLink::ResetSession(std::string_view client_id) {
  impl_->Enqueue({RedisCommand::kResetSession, std::string(client_id), {}, {}});
}

void RedisLink::Push(std::string_view client_id, std::string value, size_t max_length) {
  impl_->Enqueue({RedisCommand::kPush, std::string(client_id), {}, std::move(value), max_length});
}

void RedisLink::Forget(std::string_view client_id) {
  impl_->Enqueue({RedisCommand::kForget, std::string(client_id), {}, {}});
}

void RedisLink::SetRetained(std::string_view topic, std::string body) {
  impl_->Enqueue({RedisCommand::kSetRetained, std::string(topic), {}, std::move(body)});
}

void RedisLink::ClearRetained(std::string_view topic) {
  impl_->Enqueue({RedisCommand::kClearRetained, std::string(topic), {}, {}});
}

RedisLinkStats RedisLink::Stats() const { return impl_->Stats(); }
}  // namespace shardmq::cluster
