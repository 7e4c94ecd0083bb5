#include "store/data_dir_lock.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "temp_dir.h"

namespace shardmq::store {
namespace {

TEST(DataDirLockTest, ASecondHolderIsRefusedUntilTheFirstLetsGo) {
  const testing::TempDir temp("shardmq-lock");
  const std::string dir = temp.File("data");  // created by Acquire
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
}

}  // namespace
}  // namespace shardmq::store
