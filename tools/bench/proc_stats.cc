#include "proc_stats.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "absl/strings/str_format.h"

namespace shardmq::bench {
namespace {

std::optional<std::string> Slurp(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return std::nullopt;
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  std::fclose(f);
  return text;
}

}  // namespace

std::optional<ProcSample> SampleProcess(int pid) {
  const auto stat = Slurp(absl::StrFormat("/proc/%d/stat", pid));
  const auto status = Slurp(absl::StrFormat("/proc/%d/status", pid));
  if (!stat || !status) return std::nullopt;
  // The command name (field 2) may hold spaces and parentheses: fields are
  // counted from the last ')'. utime and stime are fields 14 and 15.
  const size_t paren = stat->rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  unsigned long long utime = 0, stime = 0;
  if (std::sscanf(stat->c_str() + paren + 1,
                  " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2) {
    return std::nullopt;
  }
  ProcSample s;
  const long ticks = sysconf(_SC_CLK_TCK);
  s.cpu_ns = (utime + stime) * (1'000'000'000ULL / static_cast<unsigned long long>(ticks));
  if (DIR* dir = opendir(absl::StrFormat("/proc/%d/task", pid).c_str())) {
    while (const dirent* e = readdir(dir)) {
      if (e->d_name[0] == '.') continue;
      const auto sched = Slurp(absl::StrFormat("/proc/%d/task/%s/schedstat", pid, e->d_name));
      unsigned long long ns = 0;
      if (sched && std::sscanf(sched->c_str(), "%llu", &ns) == 1) s.sched_ns += ns;
    }
    closedir(dir);
  }
  const size_t rss = status->find("VmRSS:");
  if (rss != std::string::npos) {
    unsigned long long kb = 0;
    if (std::sscanf(status->c_str() + rss + 6, " %llu", &kb) == 1) s.rss_bytes = kb * 1024;
  }
  return s;
}

}  // namespace shardmq::bench
