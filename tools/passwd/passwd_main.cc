// shardmq-passwd: adds, updates and deletes users in a password file that
// shardmq (and Mosquitto) can load. Command line as mosquitto_passwd's where
// it makes sense; see usage below and tools/passwd/README.md.
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "auth/password_file_edit.h"
#include "auth/text_file.h"

namespace {

using shardmq::auth::kDefaultIterations;

constexpr char kUsage[] =
    "Usage: shardmq-passwd [-c] [-I iterations] FILE USER   (asks for the password)\n"
    "       shardmq-passwd [-c] [-I iterations] -b FILE USER PASSWORD\n"
    "       shardmq-passwd -D FILE USER\n"
    "       shardmq-passwd [-I iterations] -U FILE\n"
    " -b : batch mode: the password is on the command line (visible to other users\n"
    "      in ps; prefer stdin: echo pw | shardmq-passwd FILE USER).\n"
    " -c : create FILE (replacing an existing one) with only this user.\n"
    " -D : delete USER.\n"
    " -I : PBKDF2 iterations for new hashes (default %d; 1..10000000).\n"
    " -U : hash every plain-text \"user:password\" line of FILE in place.\n"
    " -H sha512-pbkdf2 is accepted (it is the only hash written).\n"
    "Without -b the password is read twice from a terminal with echo off, or\n"
    "from the first line of stdin when stdin is not a terminal.\n";

enum class Mode { kSet, kBatch, kDelete, kUpdatePlain };

struct Options {
  Mode mode = Mode::kSet;
  bool create = false;
  int iterations = kDefaultIterations;
  std::vector<std::string> args;  // FILE [USER [PASSWORD]]
};

// Takes std::string_view or absl::string_view (a Status message); they are
// different types with this Abseil.
template <typename Text>
int Fail(const Text& message) {
  std::cerr << absl::StrFormat("shardmq-passwd: %s\n", message);
  return 1;
}

template <typename Text>
int UsageError(const Text& message) {
  std::cerr << absl::StrFormat("shardmq-passwd: %s\n", message)
            << absl::StrFormat(kUsage, kDefaultIterations);
  return 1;
}

// Parses argv; the error is a usage message.
absl::StatusOr<Options> ParseArgs(int argc, char** argv) {
  Options options;
  bool batch = false, del = false, update = false;
  int i = 1;
  for (; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') break;
    if (arg == "-b") {
      batch = true;
    } else if (arg == "-c") {
      options.create = true;
    } else if (arg == "-D") {
      del = true;
    } else if (arg == "-U") {
      update = true;
    } else if (arg == "-I" || arg == "-H") {
      if (i + 1 >= argc)
        return absl::InvalidArgumentError(absl::StrFormat("%s needs a value", arg));
      std::string_view value = argv[++i];
      if (arg == "-H") {
        if (value != "sha512-pbkdf2") {
          return absl::InvalidArgumentError(absl::StrFormat(
              "-H %s is not supported: only sha512-pbkdf2 is written (the old sha512 "
              "format is fast to brute-force; existing $6$ lines still load)",
              value));
        }
        continue;
      }
      auto [ptr, ec] =
          std::from_chars(value.data(), value.data() + value.size(), options.iterations);
      if (value.empty() || ec != std::errc() || ptr != value.data() + value.size() ||
          options.iterations < 1 || options.iterations > 10'000'000) {
        return absl::InvalidArgumentError(
            absl::StrFormat("-I wants a number from 1 to 10000000, not \"%s\"", value));
      }
    } else if (arg == "-h" || arg == "--help") {
      return absl::CancelledError("help");
    } else {
      return absl::InvalidArgumentError(absl::StrFormat("unknown option %s", arg));
    }
  }
  for (; i < argc; ++i) options.args.emplace_back(argv[i]);

  if (batch + del + update > 1) {
    return absl::InvalidArgumentError("-b, -D and -U exclude each other");
  }
  size_t want = 2;
  if (batch) {
    options.mode = Mode::kBatch;
    want = 3;
  } else if (del) {
    options.mode = Mode::kDelete;
    if (options.create) return absl::InvalidArgumentError("-c and -D exclude each other");
  } else if (update) {
    options.mode = Mode::kUpdatePlain;
    if (options.create) return absl::InvalidArgumentError("-c and -U exclude each other");
    want = 1;
  }
  if (options.args.size() != want) {
    return absl::InvalidArgumentError(
        absl::StrFormat("expected %d argument%s after the options, got %d", want,
                        want == 1 ? "" : "s", options.args.size()));
  }
  return options;
}

// The terminal settings to put back if the user presses ^C at a prompt.
termios saved_termios;
volatile sig_atomic_t echo_off = 0;

void RestoreTerminalAndExit(int sig) {
  if (echo_off) tcsetattr(STDIN_FILENO, TCSANOW, &saved_termios);
  signal(sig, SIG_DFL);
  raise(sig);
}

std::optional<std::string> PromptNoEcho(const char* prompt) {
  termios quiet = saved_termios;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  quiet.c_lflag |= ECHONL;  // Still move to the next line on Enter.
  echo_off = 1;
  // Echo off before the prompt: what is typed after seeing it is neither
  // shown nor thrown away (TCSAFLUSH drops only what was typed before).
  tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  std::cerr << prompt << std::flush;
  std::string line;
  bool ok = static_cast<bool>(std::getline(std::cin, line));
  tcsetattr(STDIN_FILENO, TCSANOW, &saved_termios);
  echo_off = 0;
  if (!ok) return std::nullopt;
  return line;
}

absl::StatusOr<std::string> ReadPassword() {
  if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_termios) == 0) {
    signal(SIGINT, RestoreTerminalAndExit);
    signal(SIGTERM, RestoreTerminalAndExit);
    signal(SIGQUIT, RestoreTerminalAndExit);
    std::optional<std::string> first = PromptNoEcho("Password: ");
    if (!first.has_value()) return absl::InvalidArgumentError("no password entered");
    std::optional<std::string> second = PromptNoEcho("Reenter password: ");
    if (!second.has_value() || *first != *second) {
      return absl::InvalidArgumentError("passwords do not match");
    }
    return *first;
  }
  // Not a terminal: the first line. Scripts written for mosquitto_passwd pipe
  // the password twice; accept that, but refuse two different lines.
  std::string first, second;
  if (!std::getline(std::cin, first)) {
    return absl::InvalidArgumentError("no password on stdin");
  }
  if (!first.empty() && first.back() == '\r') first.pop_back();
  if (std::getline(std::cin, second)) {
    if (!second.empty() && second.back() == '\r') second.pop_back();
    if (!second.empty() && second != first) {
      return absl::InvalidArgumentError("passwords do not match (stdin has two different lines)");
    }
  }
  return first;
}

int Run(const Options& options) {
  const std::string& path = options.args[0];
  std::string contents;
  if (!options.create) {
    absl::StatusOr<std::string> old = shardmq::auth::ReadTextFile(path);
    if (!old.ok()) {
      return Fail(absl::StrFormat("%s%s", old.status().message(),
                                  options.mode == Mode::kSet || options.mode == Mode::kBatch
                                      ? " (use -c to create it)"
                                      : ""));
    }
    contents = *std::move(old);
  }

  absl::StatusOr<std::string> next;
  switch (options.mode) {
    case Mode::kDelete:
      next = shardmq::auth::DeleteUser(contents, path, options.args[1]);
      break;
    case Mode::kUpdatePlain:
      next = shardmq::auth::HashPlainPasswords(contents, path, options.iterations);
      break;
    case Mode::kSet:
    case Mode::kBatch: {
      // Check the name before asking for a password that would be wasted.
      if (absl::Status s = shardmq::auth::ValidateUserName(options.args[1]); !s.ok()) {
        return Fail(s.message());
      }
      absl::StatusOr<std::string> password =
          options.mode == Mode::kBatch ? options.args[2] : ReadPassword();
      if (!password.ok()) return Fail(password.status().message());
      next = shardmq::auth::SetUserPassword(contents, path, options.args[1], *password,
                                            options.iterations);
      break;
    }
  }
  if (!next.ok()) return Fail(next.status().message());
  if (absl::Status s = shardmq::auth::WriteFileAtomically(path, *next); !s.ok()) {
    return Fail(s.message());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::StatusOr<Options> options = ParseArgs(argc, argv);
  if (!options.ok()) {
    if (absl::IsCancelled(options.status())) {
      std::cout << absl::StrFormat(kUsage, kDefaultIterations);
      return 0;
    }
    return UsageError(options.status().message());
  }
  return Run(*options);
}
