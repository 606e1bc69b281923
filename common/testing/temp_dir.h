// Test helper for any test in the tree: TempDir, a fresh folder under TMPDIR (or /tmp) that is
// removed with its contents when the object goes. Header-only (gtest and POSIX), so tests of
// libraries that know nothing of each other can share it. Not std::filesystem: libtorch.so exports
// an incompatible copy of remove_all that crashes the tests that link it.
#pragma once

#include <ftw.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>

#include <string>

namespace srlm::testing_util {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "srlm_test_") {
    const char* tmp = std::getenv("TMPDIR");
    std::string path = std::string(tmp && *tmp ? tmp : "/tmp") + "/" + prefix + "XXXXXX";
    if (::mkdtemp(path.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed for " << path;
    path_ = path;
  }
  ~TempDir() {
    ::nftw(path_.c_str(), [](const char* p, const struct stat*, int, FTW*) { return ::remove(p); }, 16,
           FTW_DEPTH | FTW_PHYS);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace srlm::testing_util
