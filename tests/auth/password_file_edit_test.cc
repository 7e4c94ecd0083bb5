// Edits behind shardmq-passwd: add, update, delete, -U, comments kept,
// errors with line numbers, the atomic write, and round trips with Debian's
// mosquitto_passwd (skipped when it is not installed).
#include "auth/password_file_edit.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "auth/password_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shardmq::auth {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kMosquittoPasswd[] = "/usr/bin/mosquitto_passwd";
constexpr int kFast = 2;  // Iterations for tests that do not test hashing cost.

std::string TempPath(std::string_view name) {
  return absl::StrFormat("%s/auth_edit_%d_%s", ::testing::TempDir(), getpid(), name);
}

std::string WriteFile(std::string_view name, std::string_view contents) {
  std::string path = TempPath(name);
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

PasswordFile MustParse(std::string_view contents) {
  absl::StatusOr<PasswordFile> file = PasswordFile::Parse(contents, "mem");
  EXPECT_TRUE(file.ok()) << file.status() << "\n" << contents;
  return file.ok() ? *std::move(file) : PasswordFile();
}

std::string Set(std::string_view contents, std::string_view user, std::string_view password) {
  absl::StatusOr<std::string> out = SetUserPassword(contents, "pw", user, password, kFast);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : std::string();
}

TEST(SetUserPasswordTest, CreatesAddsAndUpdatesKeepingOtherLines) {
  std::string text = Set("", "alice", "a1");
  EXPECT_THAT(text, MatchesRegex("alice:\\$7\\$2\\$[^$]+\\$[^$]+\n"));
  text = "# staff\n\n" + text + "  # end of staff\n";
  text = Set(text, "bob", "b1");
  std::string before_update = text;
  text = Set(text, "alice", "a2");

  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  ASSERT_EQ(lines.size(), 6u);  // Five lines and the empty piece after the last '\n'.
  EXPECT_EQ(lines[0], "# staff");
  EXPECT_EQ(lines[1], "");
  EXPECT_THAT(lines[2], StartsWith("alice:$7$2$"));  // Updated in place.
  EXPECT_EQ(lines[3], "  # end of staff");
  EXPECT_THAT(lines[4], StartsWith("bob:$7$2$"));  // Appended.
  // bob's line is byte for byte what it was.
  EXPECT_THAT(before_update, HasSubstr(lines[4] + "\n"));

  PasswordFile file = MustParse(text);
  EXPECT_TRUE(file.Check("alice", "a2"));
  EXPECT_FALSE(file.Check("alice", "a1"));
  EXPECT_TRUE(file.Check("bob", "b1"));
}

TEST(SetUserPasswordTest, DefaultIterationsAndMissingFinalNewline) {
  absl::StatusOr<std::string> hash = HashPassword("x", 1);
  ASSERT_TRUE(hash.ok());
  absl::StatusOr<std::string> out =
      SetUserPassword(absl::StrFormat("old:%s", *hash), "pw", "new", "secret");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(*out, HasSubstr(absl::StrFormat("old:%s\nnew:$7$%d$", *hash, kDefaultIterations)));
  EXPECT_EQ(out->back(), '\n');
  EXPECT_TRUE(MustParse(*out).Check("new", "secret"));
}

TEST(SetUserPasswordTest, CrLfLinesKeepTheirEnding) {
  std::string text = Set("# x\n", "u", "p");
  text = Set(text, "v", "q");
  std::string crlf;
  for (char c : text) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  text = Set(crlf, "u", "p2");
  EXPECT_THAT(text, StartsWith("# x\r\nu:$7$"));
  EXPECT_THAT(text, MatchesRegex("# x\r\nu:[^\r\n]+\r\nv:[^\r\n]+\r\n"));
  EXPECT_TRUE(MustParse(text).Check("u", "p2"));
}

TEST(SetUserPasswordTest, RefusesBadNamesAndPasswords) {
  struct Case {
    const char* user;
    const char* password;
    const char* why;
  };
  const Case cases[] = {
      {"", "p", "empty user name"},
      {"a:b", "p", "contains ':'"},
      {"a\nb", "p", "control character"},
      {"#root", "p", "starts with '#'"},
      {" bob", "p", "starts or ends with a blank"},
      {"bob ", "p", "starts or ends with a blank"},
      {"bob\t", "p", "control character"},
      {"bob", "", "empty password"},
      {"bob", "a\nb", "line break"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::string> out = SetUserPassword("", "pw", c.user, c.password, kFast);
    ASSERT_FALSE(out.ok()) << c.user;
    EXPECT_THAT(std::string(out.status().message()), HasSubstr(c.why)) << c.user;
  }
  // Names with inner blanks and UTF-8 are fine; the loader reads them back.
  std::string text = Set("", "Jürgen Müller", "pw");
  EXPECT_TRUE(MustParse(text).Check("Jürgen Müller", "pw"));
}

TEST(SetUserPasswordTest, CorruptFileIsReportedWithLineAndNotEdited) {
  absl::StatusOr<std::string> out =
      SetUserPassword("# ok\nalice:plaintext\n", "/etc/pw", "bob", "p", kFast);
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(std::string(out.status().message()), StartsWith("/etc/pw:2: user \"alice\": "));
}

TEST(DeleteUserTest, RemovesOnlyThatLine) {
  std::string text = Set(Set(Set("# head\n", "a", "1"), "b", "2"), "c", "3");
  absl::StatusOr<std::string> out = DeleteUser(text, "pw", "b");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(*out, StartsWith("# head\na:"));
  EXPECT_THAT(*out, Not(HasSubstr("\nb:")));
  PasswordFile file = MustParse(*out);
  EXPECT_EQ(file.size(), 2u);
  EXPECT_TRUE(file.Check("a", "1"));
  EXPECT_TRUE(file.Check("c", "3"));

  absl::StatusOr<std::string> missing = DeleteUser(*out, "pw", "b");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(absl::IsNotFound(missing.status()));
  EXPECT_EQ(missing.status().message(), "pw: no user \"b\"");

  // Deleting from a corrupt file names the line.
  absl::StatusOr<std::string> bad = DeleteUser("a:$7$1$AAAA$AAAA\n", "pw", "a");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), StartsWith("pw:1: "));
}

TEST(HashPlainPasswordsTest, HashesPlainLinesKeepsCommentsAndHashes) {
  std::string hashed_line = Set("", "zed", "zz");
  std::string plain = "# users\n\nbob:pw\ncarol:x:y\n" + hashed_line + "  # done";
  absl::StatusOr<std::string> out = HashPlainPasswords(plain, "plain", kFast);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(*out, StartsWith("# users\n\nbob:$7$2$"));
  EXPECT_THAT(*out, HasSubstr(hashed_line));  // Already hashed: untouched.
  EXPECT_THAT(*out, HasSubstr("\n  # done\n"));
  PasswordFile file = MustParse(*out);
  EXPECT_TRUE(file.Check("bob", "pw"));
  EXPECT_TRUE(file.Check("carol", "x:y"));  // The password is all after the first ':'.
  EXPECT_TRUE(file.Check("zed", "zz"));

  // Idempotent: a second run changes nothing.
  absl::StatusOr<std::string> again = HashPlainPasswords(*out, "plain", kFast);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *out);
}

TEST(HashPlainPasswordsTest, ErrorsNameFileAndLine) {
  const struct {
    const char* contents;
    const char* message;
  } cases[] = {
      {"a:1\n\nnocolon\n", "f:3: no ':' between user and password"},
      {"a:1\n:pw\n", "f:2: empty user name"},
      {"# c\na:\n", "f:2: user \"a\": empty password"},
      {"a:1\nb:2\na:3\n", "f:3: duplicate user \"a\""},
      {"#a:1\n #b:2\n a:3\n", "f:3: user name \" a\" starts or ends with a blank"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<std::string> out = HashPlainPasswords(c.contents, "f", kFast);
    ASSERT_FALSE(out.ok()) << c.contents;
    EXPECT_EQ(out.status().message(), c.message);
  }
}

TEST(WriteFileAtomicallyTest, NewFileIs0600ExistingKeepsMode) {
  std::string path = TempPath("atomic");
  std::remove(path.c_str());
  ASSERT_TRUE(WriteFileAtomically(path, "one\n").ok());
  EXPECT_EQ(ReadFile(path), "one\n");
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  ASSERT_EQ(chmod(path.c_str(), 0640), 0);
  ASSERT_TRUE(WriteFileAtomically(path, "two\n").ok());
  EXPECT_EQ(ReadFile(path), "two\n");
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);

  // No temporary files left behind.
  int leftovers = 0;
  for (const auto& entry : std::filesystem::directory_iterator(::testing::TempDir())) {
    if (entry.path().string().starts_with(path + ".tmp")) ++leftovers;
  }
  EXPECT_EQ(leftovers, 0);
  std::remove(path.c_str());
}

TEST(WriteFileAtomicallyTest, FollowsSymlinkAndReportsMissingDirectory) {
  std::string target = WriteFile("target", "old\n");
  std::string link = TempPath("link");
  std::remove(link.c_str());
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  ASSERT_TRUE(WriteFileAtomically(link, "new\n").ok());
  EXPECT_EQ(ReadFile(target), "new\n");
  struct stat st {};
  ASSERT_EQ(lstat(link.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));  // Still a link.
  std::remove(link.c_str());
  std::remove(target.c_str());

  absl::Status s = WriteFileAtomically("/nonexistent-dir/pw", "x\n");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), StartsWith("/nonexistent-dir/pw: cannot create"));
}

class MosquittoRoundTripTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kMosquittoPasswd, X_OK) != 0) GTEST_SKIP() << kMosquittoPasswd << " not installed";
  }
  static void Mosquitto(std::string_view flags, const std::string& path, std::string_view user,
                        std::string_view password) {
    std::string cmd =
        absl::StrFormat("%s %s -b '%s' '%s' '%s'", kMosquittoPasswd, flags, path, user, password);
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
};

// mosquitto_passwd writes a file; we edit it; mosquitto_passwd edits our
// result again (it refuses files it cannot parse, so this also shows our
// lines are valid for Mosquitto); our loader checks every password.
TEST_F(MosquittoRoundTripTest, BothToolsEditTheSameFile) {
  std::string path = TempPath("roundtrip");
  Mosquitto("-c", path, "alice", "from mosquitto");
  Mosquitto("-H sha512", path, "old", "sha512 user");

  absl::StatusOr<std::string> ours = SetUserPassword(ReadFile(path), path, "bob", "from shardmq");
  ASSERT_TRUE(ours.ok()) << ours.status();
  ours = SetUserPassword(*ours, path, "alice", "changed by shardmq");
  ASSERT_TRUE(ours.ok()) << ours.status();
  ASSERT_TRUE(WriteFileAtomically(path, *ours).ok());

  Mosquitto("", path, "carol", "mosquitto again");
  absl::StatusOr<PasswordFile> file = PasswordFile::Load(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->size(), 4u);
  EXPECT_TRUE(file->Check("alice", "changed by shardmq"));
  EXPECT_TRUE(file->Check("old", "sha512 user"));
  EXPECT_TRUE(file->Check("bob", "from shardmq"));
  EXPECT_TRUE(file->Check("carol", "mosquitto again"));
  EXPECT_THAT(ReadFile(path), HasSubstr(absl::StrFormat("bob:$7$%d$", kDefaultIterations)));

  // Mosquitto deletes a user we wrote and keeps the rest loadable.
  std::string cmd = absl::StrFormat("%s -D '%s' bob", kMosquittoPasswd, path);
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  file = PasswordFile::Load(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_FALSE(file->HasUser("bob"));
  EXPECT_TRUE(file->Check("alice", "changed by shardmq"));
  std::remove(path.c_str());
}

// mosquitto_passwd -U hashes a plain file we then load, and our -U output
// gives the same passwords, except for a password with a ':' in it, which
// mosquitto_passwd -U cuts at the ':' (while its -b keeps it); we keep it.
TEST_F(MosquittoRoundTripTest, PlainFileConversionAgrees) {
  const std::string plain = "bob:pw one\ncarol:x:y\n";
  std::string theirs = WriteFile("plain_theirs", plain);
  std::string cmd = absl::StrFormat("%s -U '%s'", kMosquittoPasswd, theirs);
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  absl::StatusOr<std::string> ours = HashPlainPasswords(plain, "plain", kFast);
  ASSERT_TRUE(ours.ok()) << ours.status();

  PasswordFile from_mosquitto = MustParse(ReadFile(theirs));
  EXPECT_TRUE(from_mosquitto.Check("bob", "pw one"));
  EXPECT_TRUE(from_mosquitto.Check("carol", "x"));
  PasswordFile from_us = MustParse(*ours);
  EXPECT_TRUE(from_us.Check("bob", "pw one"));
  EXPECT_TRUE(from_us.Check("carol", "x:y"));
  std::remove(theirs.c_str());
}

}  // namespace
}  // namespace shardmq::auth
