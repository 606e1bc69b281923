// Implementation of worker/model/checksums.h (OpenSSL's EVP SHA-256).
#include "worker/model/checksums.h"

#include <openssl/evp.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/atomic_file.h"

namespace srlm {
namespace {

// What identifies a file's bytes without reading them: any write changes ctime (and usually mtime
// and size); a rename or copy changes the inode or device.
using FileIdentity = std::tuple<dev_t, ino_t, off_t, int64_t, int64_t, int64_t, int64_t>;

absl::StatusOr<FileIdentity> IdentityOf(const std::string& path) {
  struct stat info;
  if (::stat(path.c_str(), &info) != 0) return absl::NotFoundError(absl::StrCat("cannot stat ", path));
  return FileIdentity{info.st_dev, info.st_ino, info.st_size, info.st_mtim.tv_sec, info.st_mtim.tv_nsec,
                      info.st_ctim.tv_sec, info.st_ctim.tv_nsec};
}

// The digests this process computed while verifying, by path and the file's identity then.
class VerifiedDigests {
 public:
  static VerifiedDigests& Get() {
    static VerifiedDigests* digests = new VerifiedDigests;
    return *digests;
  }
  // The file's SHA-256: remembered when the file is unchanged since it was hashed, else computed.
  absl::StatusOr<std::string> Sha256(const std::string& path) {
    absl::StatusOr<FileIdentity> before = IdentityOf(path);
    if (!before.ok()) return before.status();
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = digests_.find(path);
      if (it != digests_.end() && it->second.first == *before) return it->second.second;
    }
    const int64_t started_ns = absl::ToUnixNanos(absl::Now());
    absl::StatusOr<std::string> digest = Sha256File(path);
    if (!digest.ok()) return digest;
    absl::StatusOr<FileIdentity> after = IdentityOf(path);
    std::lock_guard<std::mutex> lock(mu_);
    ++hashed_;
    // Not remembered: a file written to while it was read, and a file changed less than 100 ms
    // before (file times tick in steps of a few ms, so a write right after could keep them).
    const int64_t changed_ns = std::get<5>(*before) * 1'000'000'000 + std::get<6>(*before);
    if (after.ok() && *after == *before && changed_ns < started_ns - 100'000'000) {
      digests_[path] = {*before, *digest};
    }
    return digest;
  }
  int64_t hashed() {
    std::lock_guard<std::mutex> lock(mu_);
    return hashed_;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::pair<FileIdentity, std::string>> digests_;
  int64_t hashed_ = 0;
};

}  // namespace

absl::StatusOr<std::string> Sha256File(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return absl::InternalError("SHA-256: cannot initialise OpenSSL's digest");
  }
  std::vector<char> buffer(size_t{4} << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const std::streamsize got = in.gcount();
    if (got > 0 && EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<size_t>(got)) != 1) {
      return absl::InternalError(absl::StrCat("SHA-256 of ", path, " failed"));
    }
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat("reading ", path, " failed"));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest, &length) != 1) {
    return absl::InternalError(absl::StrCat("SHA-256 of ", path, " failed"));
  }
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) absl::StrAppendFormat(&hex, "%02x", digest[i]);
  return hex;
}

absl::Status WriteChecksumManifest(const std::string& dir, const std::vector<std::string>& files) {
  std::string text;
  for (const std::string& name : files) {
    absl::StatusOr<std::string> hash = Sha256File(absl::StrCat(dir, "/", name));
    if (!hash.ok()) return hash.status();
    absl::StrAppend(&text, *hash, "  ", name, "\n");
  }
  return WriteFileAtomically(absl::StrCat(dir, "/", kChecksumManifest), text);
}

absl::StatusOr<int> VerifyChecksumManifest(const std::string& dir) {
  const std::string path = absl::StrCat(dir, "/", kChecksumManifest);
  struct stat info;
  if (::stat(path.c_str(), &info) != 0) {
    if (errno == ENOENT) return 0;  // a model from elsewhere
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot check ", path));  // e.g. ENOTDIR: `dir` is a file
  }
  std::ifstream in(path);
  if (!in) return absl::DataLossError(absl::StrCat(path, " exists but cannot be read"));
  std::string line;
  int checked = 0, number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    // "<hex>  <name>" (a '*' before the name marks binary mode in sha256sum's format).
    const size_t space = line.find(' ');
    std::string want = line.substr(0, space);
    std::string name = space == std::string::npos ? "" : line.substr(space + 1);
    if (!name.empty() && (name[0] == ' ' || name[0] == '*')) name.erase(0, 1);
    if (want.size() != 64 || name.empty() || name.find('/') != std::string::npos) {
      return absl::DataLossError(absl::StrCat(path, ":", number, ": not a sha256sum line"));
    }
    absl::StatusOr<std::string> got = VerifiedDigests::Get().Sha256(absl::StrCat(dir, "/", name));
    if (!got.ok()) {
      return absl::DataLossError(absl::StrCat(dir, "/", name, " is listed in ", kChecksumManifest,
                                              " but cannot be read: ", got.status().message()));
    }
    if (*got != absl::AsciiStrToLower(want)) {
      return absl::DataLossError(absl::StrCat(dir, "/", name, " changed after the checkpoint was written: its SHA-256 is ",
                                              got->substr(0, 16), "..., ", kChecksumManifest, " says ",
                                              want.substr(0, 16), "... (restore the file or the checkpoint)"));
    }
    ++checked;
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat("reading ", path, " failed"));
  if (checked == 0) return absl::DataLossError(absl::StrCat(path, " lists no files"));
  return checked;
}

int64_t FilesHashedForVerification() { return VerifiedDigests::Get().hashed(); }

}  // namespace srlm
