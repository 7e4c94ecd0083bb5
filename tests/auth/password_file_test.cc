#include "auth/password_file.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shardmq::auth {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kMosquittoPasswd[] = "/usr/bin/mosquitto_passwd";

std::string TempPath(std::string_view name) {
  return absl::StrFormat("%s/auth_pw_%d_%s", ::testing::TempDir(), getpid(), name);
}

std::string WriteFile(std::string_view name, std::string_view contents) {
  std::string path = TempPath(name);
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs mosquitto_passwd in batch mode with extra `flags` ("-c", "-H sha512").
void RunMosquittoPasswd(std::string_view flags, const std::string& path, std::string_view user,
                        std::string_view password) {
  std::string cmd =
      absl::StrFormat("%s %s -b '%s' '%s' '%s'", kMosquittoPasswd, flags, path, user, password);
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

class MosquittoPasswdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kMosquittoPasswd, X_OK) != 0) GTEST_SKIP() << kMosquittoPasswd << " not installed";
  }
};

TEST_F(MosquittoPasswdTest, DefaultIsPbkdf2With101Iterations) {
  std::string path = TempPath("pbkdf2");
  RunMosquittoPasswd("-c", path, "alice", "s3cret pass");
  RunMosquittoPasswd("", path, "bob", "hunter2");
  EXPECT_THAT(ReadFile(path), StartsWith("alice:$7$101$"));

  absl::StatusOr<PasswordFile> file = PasswordFile::Load(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->size(), 2u);
  EXPECT_TRUE(file->Check("alice", "s3cret pass"));
  EXPECT_TRUE(file->Check("bob", "hunter2"));
  EXPECT_FALSE(file->Check("alice", "s3cret pas"));
  EXPECT_FALSE(file->Check("alice", "hunter2"));
  EXPECT_FALSE(file->Check("alice", ""));
  EXPECT_FALSE(file->Check("carol", "hunter2"));
  EXPECT_FALSE(file->Check("Alice", "s3cret pass"));
  std::remove(path.c_str());
}

TEST_F(MosquittoPasswdTest, Sha512Format) {
  std::string path = TempPath("sha512");
  RunMosquittoPasswd("-H sha512 -c", path, "bob", "hunter2");
  EXPECT_THAT(ReadFile(path), StartsWith("bob:$6$"));

  absl::StatusOr<PasswordFile> file = PasswordFile::Load(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(file->Check("bob", "hunter2"));
  EXPECT_FALSE(file->Check("bob", "hunter3"));
  std::remove(path.c_str());
}

TEST_F(MosquittoPasswdTest, MixedFormatsWithCommentsAndBlankLines) {
  std::string path = TempPath("mixed");
  RunMosquittoPasswd("-c", path, "alice", "a");
  RunMosquittoPasswd("-H sha512", path, "bob", "b");
  std::string contents = "# users\n\n" + ReadFile(path) + "   \n  # end\n";
  std::string edited = WriteFile("mixed2", contents);
  absl::StatusOr<PasswordFile> file = PasswordFile::Load(edited);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(file->Check("alice", "a"));
  EXPECT_TRUE(file->Check("bob", "b"));
  EXPECT_FALSE(file->Check("alice", "b"));
  std::remove(path.c_str());
  std::remove(edited.c_str());
}

TEST(HashPasswordTest, OwnHashVerifiesAndSaltsDiffer) {
  absl::StatusOr<std::string> a = HashPassword("correct horse");
  absl::StatusOr<std::string> b = HashPassword("correct horse");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_THAT(*a, StartsWith("$7$101$"));
  EXPECT_NE(*a, *b);  // Random salt.

  absl::StatusOr<PasswordFile> file =
      PasswordFile::Parse(absl::StrFormat("dave:%s\nerin:%s\n", *a, *b), "mem");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(file->Check("dave", "correct horse"));
  EXPECT_TRUE(file->Check("erin", "correct horse"));
  EXPECT_FALSE(file->Check("dave", "correct horsE"));
}

TEST(HashPasswordTest, IterationCount) {
  absl::StatusOr<std::string> h = HashPassword("pw", 1000);
  ASSERT_TRUE(h.ok());
  EXPECT_THAT(*h, StartsWith("$7$1000$"));
  absl::StatusOr<PasswordHash> parsed = ParsePasswordHash(*h);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->iterations, 1000);
  EXPECT_EQ(parsed->salt.size(), 12u);
  EXPECT_TRUE(VerifyPassword(*parsed, "pw"));
  EXPECT_FALSE(HashPassword("pw", 0).ok());
}

// Our hash is accepted by a file mosquitto_passwd also edits: it keeps our
// line untouched when adding another user.
TEST_F(MosquittoPasswdTest, MosquittoPasswdKeepsOurLines) {
  absl::StatusOr<std::string> h = HashPassword("ours");
  ASSERT_TRUE(h.ok());
  std::string path = WriteFile("ours", absl::StrFormat("frank:%s\n", *h));
  RunMosquittoPasswd("", path, "gina", "theirs");
  absl::StatusOr<PasswordFile> file = PasswordFile::Load(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(file->Check("frank", "ours"));
  EXPECT_TRUE(file->Check("gina", "theirs"));
  std::remove(path.c_str());
}

struct BadCase {
  const char* contents;
  int line;
  const char* why;
};

TEST(PasswordFileTest, MalformedFilesNameFileAndLine) {
  std::string good = *HashPassword("x", 1);
  const BadCase cases[] = {
      {"alice\n", 1, "no ':'"},
      {"# c\n:$7$101$AAAA$AAAA\n", 2, "empty user name"},
      {"alice:plaintext\n", 1, "unsupported password hash"},
      {"alice:$7$abc$AAAA$AAAA\n", 1, "bad iteration count \"abc\""},
      {"alice:$7$0$AAAA$AAAA\n", 1, "bad iteration count \"0\""},
      {"alice:$6$AAAA\n", 1, "missing '$'"},
      {"alice:$6$!!!!$AAAA\n", 1, "salt is not base64"},
      {"alice:$6$AAAA$AAAA\n", 1, "hash is 3 bytes, want 64"},
      {"\n\nalice:$6$AAAA$\n", 3, "hash is not base64"},
  };
  for (const BadCase& c : cases) {
    std::string path = WriteFile("bad", c.contents);
    absl::StatusOr<PasswordFile> file = PasswordFile::Load(path);
    ASSERT_FALSE(file.ok()) << c.contents;
    EXPECT_THAT(std::string(file.status().message()),
                StartsWith(absl::StrFormat("%s:%d: ", path, c.line)))
        << c.contents;
    EXPECT_THAT(std::string(file.status().message()), HasSubstr(c.why)) << c.contents;
    std::remove(path.c_str());
  }
  absl::StatusOr<PasswordFile> dup =
      PasswordFile::Parse(absl::StrFormat("a:%s\nb:%s\na:%s\n", good, good, good), "pw");
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.status().message(), "pw:3: duplicate user \"a\"");
}

TEST(PasswordFileTest, MissingFile) {
  absl::StatusOr<PasswordFile> file = PasswordFile::Load("/nonexistent/passwd");
  ASSERT_FALSE(file.ok());
  EXPECT_THAT(std::string(file.status().message()), StartsWith("/nonexistent/passwd: cannot open"));
}

// An unknown user is hashed with the file's highest iteration count, so it
// is not answered faster than a known one. Only a lower bound on time is
// checked: a loaded machine makes it slower, never faster.
TEST(PasswordFileTest, UnknownUserCostsTheFilesIterations) {
  constexpr int kIterations = 200'000;  // ~100 ms at 0.5 us per iteration.
  absl::StatusOr<std::string> hash = HashPassword("pw", kIterations);
  ASSERT_TRUE(hash.ok());
  absl::StatusOr<PasswordFile> file = PasswordFile::Parse(
      absl::StrFormat("old:%s\nnew:%s\n", *HashPassword("pw", 1), *hash), "mem");
  ASSERT_TRUE(file.ok()) << file.status();
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(file->Check("nobody", "pw"));
  auto unknown = std::chrono::steady_clock::now() - start;
  start = std::chrono::steady_clock::now();
  EXPECT_TRUE(file->Check("old", "pw"));
  auto cheap = std::chrono::steady_clock::now() - start;
  // 200,000 iterations take well over 10 ms on any current CPU; one does not.
  EXPECT_GT(unknown, std::chrono::milliseconds(10));
  EXPECT_GT(unknown, cheap * 10);
}

TEST(PasswordFileTest, CrLfLines) {
  std::string h = *HashPassword("pw", 1);
  absl::StatusOr<PasswordFile> file =
      PasswordFile::Parse(absl::StrFormat("# x\r\nu:%s\r\n", h), "crlf");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(file->Check("u", "pw"));
}

}  // namespace
}  // namespace shardmq::auth
