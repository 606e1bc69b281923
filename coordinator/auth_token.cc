// Implementation of coordinator/auth_token.h.
#include "coordinator/auth_token.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <random>

#include "absl/strings/str_cat.h"

namespace srlm::coordinator {

absl::StatusOr<std::string> ResolveServerToken(const std::string& token_file, const std::string& run_dir,
                                               bool* generated) {
  if (generated) *generated = false;
  if (!token_file.empty()) return ReadTokenFile(token_file);
  if (const char* env = std::getenv("SRLM_TOKEN"); env && *env) return std::string(env);
  const std::string path = run_dir + "/token";
  if (std::filesystem::exists(path)) return ReadTokenFile(path);
  std::random_device device;
  std::string token;
  for (int i = 0; i < 8; ++i) absl::StrAppend(&token, absl::Hex(device(), absl::kZeroPad8));
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return absl::PermissionDeniedError(absl::StrCat("cannot create token file ", path));
  std::string line = token + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ok = ::fsync(fd) == 0 && ok;
  ::close(fd);
  if (!ok) return absl::InternalError(absl::StrCat("cannot write token file ", path));
  if (generated) *generated = true;
  return token;
}

bool TokensEqual(const std::string& a, const std::string& b) {
  if (b.empty()) return false;
  unsigned char diff = a.size() != b.size();
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % b.size()]);
  return diff == 0;
}

}  // namespace srlm::coordinator
