#include "store/data_dir_lock.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace shardmq::store {
namespace {

namespace fs = std::filesystem;

TEST(DataDirLockTest, ASecondHolderIsRefusedUntilTheFirstLetsGo) {
  std::string pattern = (fs::temp_directory_path() / "shardmq-lock-XXXXXX").string();
  ASSERT_NE(mkdtemp(pattern.data()), nullptr);
  const std::string dir = pattern + "/data";  // created by Acquire
  {
    auto first = DataDirLock::Acquire(dir);
    ASSERT_TRUE(first.ok()) << first.status();
    std::ifstream pid_file(dir + "/LOCK");
    int pid = 0;
    pid_file >> pid;
    EXPECT_EQ(pid, ::getpid());
    // flock(2) locks belong to the open file, so even this process is
    // refused a second one: what a second broker would meet.
    auto second = DataDirLock::Acquire(dir);
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(second.status().message(),
              "data directory " + dir + " is in use by another shardmq (pid " +
                  std::to_string(::getpid()) + " holds " + dir + "/LOCK)");
  }
  EXPECT_TRUE(DataDirLock::Acquire(dir).ok()) << "released with its holder";
  fs::remove_all(pattern);
}

}  // namespace
}  // namespace shardmq::store
