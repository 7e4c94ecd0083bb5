#include "shard/shard_group.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/check.h"
#include "base/log.h"

namespace shardmq::shard {
namespace {

std::string FlagsToString(unsigned flags) {
  std::vector<std::string> parts;
  if (flags & IORING_SETUP_SINGLE_ISSUER) parts.push_back("SINGLE_ISSUER");
  if (flags & IORING_SETUP_DEFER_TASKRUN) parts.push_back("DEFER_TASKRUN");
  if (flags & IORING_SETUP_COOP_TASKRUN) parts.push_back("COOP_TASKRUN");
  if (parts.empty()) return "none";
  return absl::StrJoin(parts, "|");
}

std::string ReadIoUringDisabledSysctl() {
  std::ifstream in("/proc/sys/kernel/io_uring_disabled");
  std::string v;
  if (!(in >> v)) return "";
  return v;
}

absl::Status SetupError(int err) {
  if (err == ENOSYS) {
    return absl::UnavailableError(
        "io_uring is unavailable (io_uring_setup: ENOSYS): the kernel is too old or built "
        "without CONFIG_IO_URING, or a seccomp filter (e.g. a container's default profile) "
        "blocks the io_uring syscalls. Run on Linux >= 6.1, or allow io_uring_setup, "
        "io_uring_enter and io_uring_register in the seccomp profile (docker: "
        "--security-opt seccomp=<profile allowing io_uring>).");
  }
  if (err == EPERM) {
    const std::string sysctl = ReadIoUringDisabledSysctl();
    if (sysctl == "2") {
      return absl::PermissionDeniedError(
          "io_uring is disabled system-wide (io_uring_setup: EPERM, "
          "kernel.io_uring_disabled = 2). Enable it: sysctl -w kernel.io_uring_disabled=0");
    }
    if (sysctl == "1") {
      return absl::PermissionDeniedError(
          "io_uring is restricted (io_uring_setup: EPERM, kernel.io_uring_disabled = 1): only "
          "root and members of the group in kernel.io_uring_group may use it. Add this user "
          "to that group, or: sysctl -w kernel.io_uring_disabled=0");
    }
    return absl::PermissionDeniedError(absl::StrCat(
        "io_uring is blocked (io_uring_setup: EPERM) although kernel.io_uring_disabled = ",
        sysctl.empty() ? "<unreadable>" : sysctl,
        ": most likely a seccomp or LSM policy (container runtime profile). Allow "
        "io_uring_setup, io_uring_enter and io_uring_register for this process."));
  }
  if (err == ENOMEM) {
    return absl::ResourceExhaustedError(
        "io_uring_setup: ENOMEM: the locked-memory limit is too low for the ring; raise it "
        "(ulimit -l / LimitMEMLOCK=) or use a newer kernel that accounts rings to memcg.");
  }
  return absl::InternalError(absl::StrFormat("io_uring_setup failed: %s", strerror(err)));
}

// Picks the fastest ring flags this kernel accepts and checks every feature
// the runtime needs (opcodes, provided buffer rings, multishot recv).
absl::StatusOr<RingConfig> ProbeRing() {
  static constexpr unsigned kCandidates[] = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN,
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
      IORING_SETUP_COOP_TASKRUN,
      0,
  };
  io_uring ring{};
  io_uring_params params{};
  unsigned chosen = 0;
  int ret = -EINVAL;
  for (unsigned flags : kCandidates) {
    params = io_uring_params{};
    params.flags = flags;
    ret = io_uring_queue_init_params(8, &ring, &params);
    if (ret == 0) {
      chosen = flags;
      break;
    }
    if (ret != -EINVAL) break;
  }
  if (ret != 0) return SetupError(-ret);

  absl::Status status = absl::OkStatus();
  if (!(params.features & IORING_FEAT_EXT_ARG)) {
    status = absl::FailedPreconditionError(
        "io_uring lacks IORING_FEAT_EXT_ARG (wait with timeout); need Linux >= 5.11");
  }
  if (status.ok()) {
    io_uring_probe* probe = io_uring_get_probe_ring(&ring);
    if (probe == nullptr) {
      status = absl::FailedPreconditionError("io_uring opcode probe failed; need Linux >= 6.1");
    } else {
      const std::pair<int, const char*> needed[] = {
          {IORING_OP_ACCEPT, "ACCEPT"},     {IORING_OP_RECV, "RECV"},
          {IORING_OP_SENDMSG, "SENDMSG"},   {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"},
          {IORING_OP_MSG_RING, "MSG_RING"}, {IORING_OP_READ, "READ"},
      };
      for (const auto& [op, name] : needed) {
        if (!io_uring_opcode_supported(probe, op)) {
          status = absl::FailedPreconditionError(
              absl::StrCat("io_uring lacks IORING_OP_", name, "; shardmq needs Linux >= 6.1"));
          break;
        }
      }
      io_uring_free_probe(probe);
    }
  }
  // Provided buffer ring + multishot recv: try them for real on a socketpair.
  void* br_mem = nullptr;
  int sv[2] = {-1, -1};
  if (status.ok()) {
    br_mem = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uint64_t>(br_mem);
    reg.ring_entries = 4;
    reg.bgid = 7;
    if (br_mem == MAP_FAILED || io_uring_register_buf_ring(&ring, &reg, 0) < 0) {
      status = absl::FailedPreconditionError(
          "io_uring lacks provided buffer rings (IORING_REGISTER_PBUF_RING); need Linux >= "
          "5.19 (6.1+ recommended)");
    }
  }
  static uint8_t probe_buf[4][64];
  if (status.ok()) {
    auto* br = static_cast<io_uring_buf_ring*>(br_mem);
    io_uring_buf_ring_init(br);
    for (int i = 0; i < 4; ++i) {
      io_uring_buf_ring_add(br, probe_buf[i], sizeof(probe_buf[i]), i, io_uring_buf_ring_mask(4),
                            i);
    }
    io_uring_buf_ring_advance(br, 4);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      status = absl::InternalError(absl::StrFormat("socketpair: %s", strerror(errno)));
    }
  }
  if (status.ok()) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    io_uring_prep_recv_multishot(sqe, sv[0], nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = 7;
    io_uring_sqe_set_data64(sqe, 1);
    io_uring_submit(&ring);
    [[maybe_unused]] ssize_t w = ::write(sv[1], "x", 1);
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec ts{1, 0};
    const int r = io_uring_wait_cqe_timeout(&ring, &cqe, &ts);
    bool recv_done = false;
    if (r < 0 || cqe == nullptr || cqe->res != 1 || !(cqe->flags & IORING_CQE_F_MORE)) {
      status = absl::FailedPreconditionError(
          "io_uring lacks multishot recv (IORING_RECV_MULTISHOT); need Linux >= 6.0");
      recv_done = cqe != nullptr && !(cqe->flags & IORING_CQE_F_MORE);
    }
    if (cqe != nullptr) io_uring_cqe_seen(&ring, cqe);
    // Leave nothing pending: a request cancelled by io_uring_queue_exit would
    // queue task work to this (the caller's) thread later, which interrupts its
    // blocking syscalls with EINTR.
    if (!recv_done) {
      sqe = io_uring_get_sqe(&ring);
      io_uring_prep_cancel64(sqe, 1, 0);
      io_uring_sqe_set_data64(sqe, 2);
      io_uring_submit(&ring);
      for (int i = 0; i < 8 && !recv_done; ++i) {
        cqe = nullptr;
        if (io_uring_wait_cqe_timeout(&ring, &cqe, &ts) < 0 || cqe == nullptr) break;
        if (cqe->user_data == 1 && !(cqe->flags & IORING_CQE_F_MORE)) recv_done = true;
        io_uring_cqe_seen(&ring, cqe);
      }
    }
  }
  if (sv[0] >= 0) {
    ::close(sv[0]);
    ::close(sv[1]);
  }
  io_uring_queue_exit(&ring);
  if (br_mem != nullptr && br_mem != MAP_FAILED) munmap(br_mem, 4096);
  if (!status.ok()) return status;
  RingConfig config;
  config.flags = chosen;
  config.description = FlagsToString(chosen);
  return config;
}

// The socket address for a numeric host and a port.
absl::Status MakeAddress(const std::string& host, uint16_t port, sockaddr_storage& ss,
                         socklen_t& len, int& family) {
  ss = {};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    family = AF_INET;
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    family = AF_INET6;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof(sockaddr_in6);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("listener host '", host, "' is not a numeric IPv4/IPv6 address"));
  }
  return absl::OkStatus();
}

uint16_t PortOf(int fd, int family) {
  sockaddr_storage got{};
  socklen_t got_len = sizeof(got);
  getsockname(fd, reinterpret_cast<sockaddr*>(&got), &got_len);
  return ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&got)->sin_port
                                 : reinterpret_cast<sockaddr_in6*>(&got)->sin6_port);
}

// Whether a socket in LISTEN state (of any process) holds `port` on
// `address` (or on the wildcard address, or, for a wildcard `address`, on any
// address), by the kernel's table (/proc/net/tcp, tcp6). Connections that
// outlive a crashed broker (FIN_WAIT, TIME_WAIT) do not count: a restart
// must be able to bind at once.
bool SomeoneListens(int family, const sockaddr_storage& address, uint16_t port) {
  std::string ours;
  std::string wildcard;
  if (family == AF_INET) {
    ours = absl::StrFormat("%08X", reinterpret_cast<const sockaddr_in&>(address).sin_addr.s_addr);
    wildcard = "00000000";
  } else {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(address).sin6_addr;
    for (int i = 0; i < 4; ++i) {
      uint32_t word = 0;
      std::memcpy(&word, v6.s6_addr + 4 * i, 4);
      ours += absl::StrFormat("%08X", word);
    }
    wildcard = std::string(32, '0');
  }
  FILE* table = fopen(family == AF_INET ? "/proc/net/tcp" : "/proc/net/tcp6", "re");
  if (table == nullptr) return false;  // no way to tell: bind will say what it can
  char line[512];
  bool found = false;
  const std::string port_hex = absl::StrFormat("%04X", port);
  while (!found && fgets(line, sizeof(line), table) != nullptr) {
    // "  0: 0100007F:AFD7 00000000:0000 0A ..."
    std::istringstream fields(line);
    std::string slot, local, remote, state;
    if (!(fields >> slot >> local >> remote >> state) || state != "0A") continue;
    const size_t colon = local.find(':');
    if (colon == std::string::npos || local.substr(colon + 1) != port_hex) continue;
    const std::string host = local.substr(0, colon);
    found = host == ours || host == wildcard || ours == wildcard;
  }
  fclose(table);
  return found;
}

// The shards share a port through SO_REUSEPORT, which would just as
// silently let them share it with another process (a second broker started
// by mistake, which would then get some of the clients). So a port in use by
// a listener elsewhere stops start-up; and port 0 is chosen by a plain bind,
// so it is one nobody uses.
absl::StatusOr<uint16_t> ReservePort(const ShardGroup::ListenAddress& a, uint16_t port) {
  sockaddr_storage ss;
  socklen_t len = 0;
  int family = 0;
  if (absl::Status status = MakeAddress(a.host, port, ss, len, family); !status.ok()) {
    return status;
  }
  if (port != 0) {
    // A broker killed a moment ago leaves its listener behind for a few
    // milliseconds (the kernel tears its io_uring down after the process is
    // gone, and the ring holds the socket), so a restart waits a little for
    // it to go before taking a listener for another process's.
    for (int waited_ms = 0; SomeoneListens(family, ss, port); waited_ms += 20) {
      if (waited_ms >= 3000) {
        return absl::UnavailableError(
            absl::StrFormat("bind %s port %d: another process listens there", a.host, port));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return port;
  }
  const int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrFormat("socket: %s", strerror(errno)));
  int one = 1;
  if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::UnavailableError(
        absl::StrFormat("bind %s port %d: %s", a.host, port, strerror(err)));
  }
  const uint16_t reserved = PortOf(fd, family);
  ::close(fd);
  return reserved;
}

absl::StatusOr<int> BindListener(const ShardGroup::ListenAddress& a, uint16_t port, int backlog,
                                 bool tcp_nodelay, uint16_t* bound_port) {
  sockaddr_storage ss;
  socklen_t len = 0;
  int family = 0;
  if (absl::Status status = MakeAddress(a.host, port, ss, len, family); !status.ok()) {
    return status;
  }
  const int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return absl::InternalError(absl::StrFormat("socket: %s", strerror(errno)));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    ::close(fd);
    return absl::InternalError(absl::StrFormat("SO_REUSEPORT: %s", strerror(errno)));
  }
  if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  // Linux copies TCP_NODELAY from a listener to the sockets it accepts, which
  // saves a setsockopt per connection (the shard checks the first one).
  if (tcp_nodelay) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(fd, backlog) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::UnavailableError(
        absl::StrFormat("bind/listen %s port %d: %s", a.host, port, strerror(err)));
  }
  *bound_port = PortOf(fd, family);
  return fd;
}

// "unix:///run/mqtt.sock", as the user wrote it, for messages.
std::string UnixName(const std::string& path) { return absl::StrCat("unix://", path); }

// Makes room for a unix socket at `path`. A socket file nothing accepts on
// is what a crashed process leaves behind: it is removed. A socket something
// does accept on (another broker) and a file that is not a socket are not
// ours to take: both stop start-up, naming the path.
absl::Status ClearStaleSocket(const std::string& path, const sockaddr_un& address) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return absl::UnavailableError(
        absl::StrFormat("listener %s: %s: %s", UnixName(path), path, strerror(errno)));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrFormat("listener %s: %s exists and is not a socket; remove it or choose "
                        "another path",
                        UnixName(path), path));
  }
  // Connecting tells a live socket from a stale one: ECONNREFUSED means
  // nothing listens; a non-blocking connect never waits (EAGAIN: a listener
  // with a full backlog, alive).
  const int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (probe < 0) return absl::InternalError(absl::StrFormat("socket: %s", strerror(errno)));
  const int connected =
      connect(probe, reinterpret_cast<const sockaddr*>(&address), sizeof(sockaddr_un));
  const int err = errno;
  ::close(probe);
  if (connected == 0 || err == EAGAIN) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "listener %s: another process accepts connections on %s (another shardmq?); stop it "
        "or choose another path",
        UnixName(path), path));
  }
  if (err != ECONNREFUSED) {
    return absl::UnavailableError(
        absl::StrFormat("listener %s: cannot tell whether %s is in use: connect: %s",
                        UnixName(path), path, strerror(err)));
  }
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::UnavailableError(
        absl::StrFormat("listener %s: cannot remove the stale socket %s: %s", UnixName(path), path,
                        strerror(errno)));
  }
  SHARDMQ_LOG(kInfo, "listener %s: removed the stale socket file %s (nothing accepted on it)",
              UnixName(path), path);
  return absl::OkStatus();
}

// Sets the socket file's mode and owner, between bind() and listen(): a
// client can connect only once the socket listens, so none gets in through
// the permissions the umask gave.
absl::Status ApplyUnixPermissions(const ShardGroup::ListenAddress& a) {
  const char* path = a.unix_path.c_str();
  if (a.unix_mode >= 0 && chmod(path, static_cast<mode_t>(a.unix_mode)) != 0) {
    return absl::UnavailableError(absl::StrFormat(
        "listener %s: chmod %o %s: %s", UnixName(a.unix_path), a.unix_mode, path, strerror(errno)));
  }
  const bool chown_wanted =
      a.unix_uid != static_cast<uid_t>(-1) || a.unix_gid != static_cast<gid_t>(-1);
  if (chown_wanted && lchown(path, a.unix_uid, a.unix_gid) != 0) {
    const int err = errno;
    return absl::UnavailableError(absl::StrFormat(
        "listener %s: chown %s to uid %d, gid %d: %s%s", UnixName(a.unix_path), path,
        static_cast<int>(a.unix_uid), static_cast<int>(a.unix_gid), strerror(err),
        err == EPERM ? " (giving a file to another user needs root or CAP_CHOWN)" : ""));
  }
  return absl::OkStatus();
}

// Binds and listens on a unix-domain socket; `file` gets what identifies the
// socket file it created (set as soon as the file exists, so a failure later
// on still removes it).
absl::StatusOr<int> BindUnixListener(const ShardGroup::ListenAddress& a, int backlog,
                                     struct stat* file) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (a.unix_path.empty() || a.unix_path.size() >= sizeof(address.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("listener %s: path too long for a unix socket", UnixName(a.unix_path)));
  }
  std::memcpy(address.sun_path, a.unix_path.data(), a.unix_path.size());
  if (absl::Status cleared = ClearStaleSocket(a.unix_path, address); !cleared.ok()) {
    return cleared;
  }
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return absl::InternalError(absl::StrFormat("socket: %s", strerror(errno)));
  if (bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::UnavailableError(
        absl::StrFormat("listener %s: bind: %s", UnixName(a.unix_path), strerror(err)));
  }
  if (lstat(a.unix_path.c_str(), file) != 0) *file = {};
  absl::Status ready = ApplyUnixPermissions(a);
  if (ready.ok() && listen(fd, backlog) != 0) {
    ready = absl::UnavailableError(
        absl::StrFormat("listener %s: listen: %s", UnixName(a.unix_path), strerror(errno)));
  }
  if (!ready.ok()) {
    ::close(fd);
    return ready;
  }
  return fd;
}

}  // namespace

uint32_t AutoMailboxCapacity(uint32_t shard_count) {
  if (shard_count < 2) return kMinMailboxCapacity;
  uint32_t capacity = kInboundMailBudget;
  while (capacity > kMinMailboxCapacity && capacity > kInboundMailBudget / (shard_count - 1)) {
    capacity >>= 1;
  }
  return capacity;
}

absl::StatusOr<std::unique_ptr<ShardGroup>> ShardGroup::Create(const Options& options,
                                                               HandlerFactory factory) {
  if (options.shard_count < 1 || options.shard_count > 1024) {
    return absl::InvalidArgumentError("shard_count must be in [1, 1024]");
  }
  if (options.recv_buffer_count == 0 || options.recv_buffer_count > 32768 ||
      (options.recv_buffer_count & (options.recv_buffer_count - 1)) != 0) {
    return absl::InvalidArgumentError("recv_buffer_count must be a power of two <= 32768");
  }
  if (options.recv_buffer_size < 64) return absl::InvalidArgumentError("recv_buffer_size < 64");
  if (!factory) return absl::InvalidArgumentError("handler factory is empty");
  // A connection slot keeps its listener's index in an int8_t.
  if (options.listeners.size() > 127) return absl::InvalidArgumentError("more than 127 listeners");

  // The probe runs on a thread of its own: tearing a ring down can leave task
  // work for the thread that created it, which would interrupt the caller's
  // next blocking syscall with EINTR (seen in tests, and an embedding program
  // must never see it). The probe thread takes that with it when it exits.
  absl::StatusOr<RingConfig> config = absl::InternalError("io_uring probe did not run");
  std::thread([&config] { config = ProbeRing(); }).join();
  if (!config.ok()) return config.status();
  SHARDMQ_LOG(kInfo, "shard runtime: io_uring flags %s, %d shard(s)", config->description,
              options.shard_count);

  std::unique_ptr<ShardGroup> g(new ShardGroup());
  g->options_ = options;
  g->address_limiter_ = std::make_unique<AddressLimiter>(options.address_limits);
  g->listener_open_ = std::make_unique<std::atomic<int64_t>[]>(options.listeners.size());
  g->max_connections_.store(options.max_connections, std::memory_order_relaxed);
  g->factory_ = std::move(factory);
  g->ring_config_ = *config;
  const int n = options.shard_count;
  for (int i = 0; i < n; ++i) g->shards_.emplace_back(new Shard(g.get(), i, n));
  for (int i = 0; i < n; ++i) g->external_.push_back(std::make_unique<ExternalMailbox>());
  g->mailboxes_.resize(size_t(n) * n);
  const uint32_t capacity = options.mailbox_capacity != 0
                                ? options.mailbox_capacity
                                : AutoMailboxCapacity(static_cast<uint32_t>(n));
  for (int from = 0; from < n; ++from) {
    for (int to = 0; to < n; ++to) {
      if (from == to) continue;
      auto& m = g->mailboxes_[size_t(from) * n + to];
      m = std::make_unique<SpscRing<MailItem>>(capacity);
      g->shards_[from]->outbound_[to] = m.get();
      g->shards_[to]->inbound_[from] = m.get();
    }
  }
  for (size_t li = 0; li < options.listeners.size(); ++li) {
    const ListenAddress& a = options.listeners[li];
    if (!a.unix_path.empty()) {
      if (absl::Status bound = g->BindUnixOnEveryShard(static_cast<int>(li)); !bound.ok()) {
        return bound;  // ~ShardGroup closes the listeners and removes the files made so far
      }
      continue;
    }
    absl::StatusOr<uint16_t> reserved = ReservePort(a, a.port);
    if (!reserved.ok()) return reserved.status();
    uint16_t port = *reserved;
    for (int i = 0; i < n; ++i) {
      uint16_t bound = 0;
      absl::StatusOr<int> fd =
          BindListener(a, port, options.listen_backlog, options.tcp_nodelay, &bound);
      if (!fd.ok()) return fd.status();  // ~Shard closes the listeners added so far
      g->shards_[i]->AddListener(*fd, static_cast<int>(li));
      port = bound;  // the other shards bind to the port the first one got
    }
    g->bound_ports_.push_back(port);
    const bool v6 = a.host.find(':') != std::string::npos;
    g->bound_addresses_.push_back(v6 ? absl::StrFormat("[%s]:%d", a.host, port)
                                     : absl::StrFormat("%s:%d", a.host, port));
  }
  return g;
}

absl::Status ShardGroup::BindUnixOnEveryShard(int index) {
  const ListenAddress& a = options_.listeners[static_cast<size_t>(index)];
  struct stat file {};
  absl::StatusOr<int> fd = BindUnixListener(a, options_.listen_backlog, &file);
  if (!fd.ok()) return fd.status();
  if (file.st_ino != 0) unix_files_.push_back({a.unix_path, file.st_dev, file.st_ino});
  // SO_REUSEPORT does not spread unix-socket connections over several
  // sockets, so there is one socket and every shard accepts on it (its own
  // dup, which it closes at shutdown): each connection wakes one waiting
  // accept, so whichever shard is free takes it. Its CONNECT moves it to the
  // client's home shard anyway, as for TCP.
  for (int i = 0; i < shard_count(); ++i) {
    const int shard_fd = i == 0 ? *fd : fcntl(*fd, F_DUPFD_CLOEXEC, 0);
    if (shard_fd < 0) {
      return absl::InternalError(absl::StrFormat("dup: %s", strerror(errno)));
    }
    shards_[i]->AddListener(shard_fd, index);
  }
  bound_ports_.push_back(0);
  bound_addresses_.push_back(absl::StrCat("unix:", a.unix_path));
  return absl::OkStatus();
}

void ShardGroup::RemoveUnixSocketFiles() {
  for (const UnixSocketFile& file : unix_files_) {
    struct stat st {};
    if (lstat(file.path.c_str(), &st) == 0 && st.st_dev == file.device && st.st_ino == file.inode) {
      unlink(file.path.c_str());
    }
  }
  unix_files_.clear();
}

std::vector<std::string> ShardGroup::BoundAddresses() const { return bound_addresses_; }
std::vector<uint16_t> ShardGroup::BoundPorts() const { return bound_ports_; }

void ShardGroup::SetConnectionLimits(int64_t max_connections,
                                     const AddressLimiter::Options& per_address) {
  max_connections_.store(max_connections, std::memory_order_relaxed);
  address_limiter_->SetOptions(per_address);
}

void ShardGroup::ThreadMain(int index) {
  Shard& shard = *shards_[index];
  absl::Status status = absl::OkStatus();
  if (!options_.cpus.empty()) {
    const int cpu = options_.cpus[size_t(index) % options_.cpus.size()];
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    const int err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    if (err != 0) {
      status = absl::InvalidArgumentError(
          absl::StrFormat("shard %d: cannot pin to cpu %d: %s", index, cpu, strerror(err)));
    }
  }
  if (status.ok()) status = shard.InitOnThread(ring_config_.flags);
  if (status.ok()) {
    handlers_[index] = factory_(shard);
    shard.handler_ = handlers_[index].get();
    if (shard.handler_ == nullptr) status = absl::InternalError("handler factory returned null");
  }
  init_status_[index] = status;
  init_done_.fetch_add(1, std::memory_order_release);
  init_done_.notify_all();
  go_.wait(false, std::memory_order_acquire);
  if (abort_start_.load(std::memory_order_acquire)) return;
  shard.Run();
}

absl::Status ShardGroup::Start() {
  SHARDMQ_CHECK(!started_);
  started_ = true;
  const int n = shard_count();
  handlers_.resize(n);
  init_status_.assign(n, absl::OkStatus());
  reports_.resize(n);
  for (int i = 0; i < n; ++i) threads_.emplace_back([this, i] { ThreadMain(i); });
  for (int done = init_done_.load(std::memory_order_acquire); done < n;
       done = init_done_.load(std::memory_order_acquire)) {
    init_done_.wait(done, std::memory_order_acquire);
  }
  absl::Status first = absl::OkStatus();
  for (const absl::Status& s : init_status_) {
    if (!s.ok()) {
      first = s;
      break;
    }
  }
  if (!first.ok()) abort_start_.store(true, std::memory_order_release);
  go_.store(true, std::memory_order_release);
  go_.notify_all();
  if (!first.ok()) {
    for (auto& t : threads_) t.join();
    threads_.clear();
    handlers_.clear();
    joined_ = true;
    return first;
  }
  return absl::OkStatus();
}

bool ShardGroup::PostExternal(int shard, ExternalMailbox::Task task) {
  std::lock_guard<std::mutex> lock(stop_mutex_);
  if (!started_ || stop_disabled_ || shard < 0 || shard >= shard_count()) return false;
  switch (external_[shard]->Push(std::move(task))) {
    case ExternalMailbox::Pushed::kRefused:
      return false;  // the shard has left its loop; `task` dies unrun, unlocked
    case ExternalMailbox::Pushed::kQueuedWake: {
      // The eventfd read is always armed in the shard's ring (as for Stop).
      const uint64_t one = 1;
      [[maybe_unused]] ssize_t r = ::write(shards_[shard]->event_fd_, &one, sizeof(one));
      return true;
    }
    case ExternalMailbox::Pushed::kQueued:
      return true;
  }
  return true;
}

void ShardGroup::Stop() {
  std::lock_guard<std::mutex> lock(stop_mutex_);
  if (!started_ || stop_disabled_) return;
  for (auto& s : shards_) s->RequestStop();
}

ShutdownReport ShardGroup::Join() {
  ShutdownReport total;
  if (!started_ || joined_) return total;
  for (auto& t : threads_) t.join();
  threads_.clear();
  joined_ = true;
  {
    // No task may run without its shard: refuse new ones, drop the rest.
    std::lock_guard<std::mutex> lock(stop_mutex_);
    stop_disabled_ = true;
  }
  external_.clear();
  // Every shard thread has exited: this thread is now the only one touching
  // the mailboxes (thread join gives happens-before). Deliver leftovers in
  // per-source order: the ring first, then the source's overflow.
  const int n = shard_count();
  std::vector<ShutdownReport> reports(n);
  for (int t = 0; t < n; ++t) {
    reports[t] = shards_[t]->report_;
    for (int s = 0; s < n; ++s) {
      if (s == t) continue;
      auto deliver = [&](MailItem m) {
        if (Shard::IsBulk(m)) m.kind &= ~Shard::kBulkBit;
        if (m.kind >= kMailKindReservedBase) {
          int listener_index = -1;
          AddressLimiter::Key address_key = AddressLimiter::kNoKey;
          if (Shard::DiscardInternalMail(m, &listener_index, &address_key)) {
            ConnectionClosed(listener_index, address_key, 0);
            ++reports[t].handoffs_closed;
          }
        } else {
          handlers_[t]->OnMail(s, m);
          ++reports[t].mail_delivered_late;
        }
      };
      while (mailboxes_[size_t(s) * n + t]->Drain(SIZE_MAX, deliver) > 0) {
      }
      auto& of = shards_[s]->overflow_[t];
      for (const MailItem& m : of) deliver(m);
      of.clear();
    }
  }
  handlers_.clear();
  // Every shard has closed its listeners: nothing accepts on the files now.
  RemoveUnixSocketFiles();
  for (const ShutdownReport& r : reports) {
    total.listeners_closed += r.listeners_closed;
    total.connections_flushed += r.connections_flushed;
    total.connections_aborted += r.connections_aborted;
    total.handoffs_closed += r.handoffs_closed;
    total.mail_delivered_late += r.mail_delivered_late;
  }
  SHARDMQ_LOG(
      kInfo,
      "shard runtime stopped: %d shard(s), %llu listener(s) closed, %llu connection(s) "
      "flushed and closed, %llu aborted at the deadline, %llu late hand-off(s) closed, "
      "%llu mail item(s) delivered after stop",
      n, (unsigned long long)total.listeners_closed, (unsigned long long)total.connections_flushed,
      (unsigned long long)total.connections_aborted, (unsigned long long)total.handoffs_closed,
      (unsigned long long)total.mail_delivered_late);
  return total;
}

ShardGroup::~ShardGroup() {
  if (started_ && !joined_) {
    Stop();
    Join();
  }
  {
    // Waits for a Stop() in progress on another thread; none may start now.
    std::lock_guard<std::mutex> lock(stop_mutex_);
    stop_disabled_ = true;
  }
  handlers_.clear();
  shards_.clear();  // closes the listeners of a group that never started
  RemoveUnixSocketFiles();
}

}  // namespace shardmq::shard
