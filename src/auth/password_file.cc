#include "auth/password_file.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <charconv>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "auth/text_file.h"

namespace shardmq::auth {
namespace {

constexpr size_t kHashBytes = 64;  // SHA-512.
constexpr size_t kSaltBytes = 12;  // What mosquitto_passwd uses.
// Refuse absurd counts from a file: each Check() would stall a thread.
constexpr int kMaxIterations = 10'000'000;

absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::StatusOr<std::string> DecodeBase64(std::string_view text, std::string_view what) {
  std::string out;
  if (text.empty() || !absl::Base64Unescape(Absl(text), &out)) {
    return absl::InvalidArgumentError(absl::StrFormat("%s is not base64: \"%s\"", what, text));
  }
  return out;
}

std::string ComputeHash(const PasswordHash& stored, std::string_view password) {
  std::string out(kHashBytes, '\0');
  auto* out_bytes = reinterpret_cast<unsigned char*>(out.data());
  if (stored.kind == PasswordHash::Kind::kPbkdf2Sha512) {
    if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                          reinterpret_cast<const unsigned char*>(stored.salt.data()),
                          static_cast<int>(stored.salt.size()), stored.iterations, EVP_sha512(),
                          static_cast<int>(kHashBytes), out_bytes) != 1) {
      return {};
    }
    return out;
  }
  unsigned int len = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha512(), nullptr) == 1 &&
            EVP_DigestUpdate(ctx, password.data(), password.size()) == 1 &&
            EVP_DigestUpdate(ctx, stored.salt.data(), stored.salt.size()) == 1 &&
            EVP_DigestFinal_ex(ctx, out_bytes, &len) == 1 && len == kHashBytes;
  EVP_MD_CTX_free(ctx);
  return ok ? out : std::string();
}

}  // namespace

absl::StatusOr<PasswordHash> ParsePasswordHash(std::string_view text) {
  PasswordHash result;
  std::string_view rest;
  if (text.starts_with("$7$")) {
    result.kind = PasswordHash::Kind::kPbkdf2Sha512;
    rest = text.substr(3);
    size_t dollar = rest.find('$');
    std::string_view count = rest.substr(0, dollar);
    auto [ptr, ec] = std::from_chars(count.data(), count.data() + count.size(), result.iterations);
    if (dollar == std::string_view::npos || ec != std::errc() ||
        ptr != count.data() + count.size() || result.iterations < 1 ||
        result.iterations > kMaxIterations) {
      return absl::InvalidArgumentError(
          absl::StrFormat("bad iteration count \"%s\" (want 1..%d)", count, kMaxIterations));
    }
    rest.remove_prefix(dollar + 1);
  } else if (text.starts_with("$6$")) {
    result.kind = PasswordHash::Kind::kSha512;
    rest = text.substr(3);
  } else {
    return absl::InvalidArgumentError(absl::StrFormat(
        "unsupported password hash \"%s\" (want $7$ or $6$ as written by mosquitto_passwd; "
        "plain-text passwords are not accepted)",
        text.substr(0, 8)));
  }
  size_t dollar = rest.find('$');
  if (dollar == std::string_view::npos) {
    return absl::InvalidArgumentError("missing '$' between salt and hash");
  }
  absl::StatusOr<std::string> salt = DecodeBase64(rest.substr(0, dollar), "salt");
  if (!salt.ok()) return salt.status();
  absl::StatusOr<std::string> hash = DecodeBase64(rest.substr(dollar + 1), "hash");
  if (!hash.ok()) return hash.status();
  if (hash->size() != kHashBytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("hash is %d bytes, want %d", hash->size(), kHashBytes));
  }
  result.salt = *std::move(salt);
  result.hash = *std::move(hash);
  return result;
}

bool VerifyPassword(const PasswordHash& stored, std::string_view password) {
  std::string computed = ComputeHash(stored, password);
  return computed.size() == kHashBytes && stored.hash.size() == kHashBytes &&
         CRYPTO_memcmp(computed.data(), stored.hash.data(), kHashBytes) == 0;
}

absl::StatusOr<std::string> HashPassword(std::string_view password, int iterations) {
  if (iterations < 1 || iterations > kMaxIterations) {
    return absl::InvalidArgumentError(
        absl::StrFormat("iterations %d out of range 1..%d", iterations, kMaxIterations));
  }
  PasswordHash entry;
  entry.kind = PasswordHash::Kind::kPbkdf2Sha512;
  entry.iterations = iterations;
  entry.salt.resize(kSaltBytes);
  if (RAND_bytes(reinterpret_cast<unsigned char*>(entry.salt.data()),
                 static_cast<int>(kSaltBytes)) != 1) {
    return absl::InternalError("RAND_bytes failed: no random salt");
  }
  std::string hash = ComputeHash(entry, password);
  if (hash.size() != kHashBytes) return absl::InternalError("PKCS5_PBKDF2_HMAC failed");
  return absl::StrFormat("$7$%d$%s$%s", iterations, absl::Base64Escape(entry.salt),
                         absl::Base64Escape(hash));
}

absl::StatusOr<PasswordFile> PasswordFile::Load(std::string_view path) {
  absl::StatusOr<std::string> contents = ReadTextFile(path);
  if (!contents.ok()) return contents.status();
  return Parse(*contents, path);
}

absl::StatusOr<PasswordFile> PasswordFile::Parse(std::string_view contents, std::string_view name) {
  PasswordFile file;
  absl::Status status = ForEachLine(contents, [&](int line_no, std::string_view line) {
    std::string_view trimmed = StripBlanks(line);
    if (trimmed.empty() || trimmed.front() == '#') return absl::OkStatus();
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s:%d: no ':' in \"%s\"", name, line_no, line));
    }
    std::string_view user = line.substr(0, colon);
    if (user.empty()) {
      return absl::InvalidArgumentError(absl::StrFormat("%s:%d: empty user name", name, line_no));
    }
    absl::StatusOr<PasswordHash> hash = ParsePasswordHash(line.substr(colon + 1));
    if (!hash.ok()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s:%d: user \"%s\": %s", name, line_no, user, hash.status().message()));
    }
    if (hash->kind == PasswordHash::Kind::kPbkdf2Sha512) {
      file.dummy_iterations_ = std::max(file.dummy_iterations_, hash->iterations);
    }
    if (!file.users_.emplace(std::string(user), *std::move(hash)).second) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s:%d: duplicate user \"%s\"", name, line_no, user));
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return file;
}

bool PasswordFile::HasUser(std::string_view user) const { return users_.contains(Absl(user)); }

bool PasswordFile::Check(std::string_view user, std::string_view password) const {
  auto it = users_.find(Absl(user));
  if (it == users_.end()) {
    // Spend at least the time of a real user, then refuse.
    PasswordHash dummy;
    dummy.iterations = dummy_iterations_;
    dummy.salt.assign(kSaltBytes, 'x');
    dummy.hash.assign(kHashBytes, '\0');
    (void)VerifyPassword(dummy, password);
    return false;
  }
  return VerifyPassword(it->second, password);
}

}  // namespace shardmq::auth
