#include "worker/model/model_test_util.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <vector>

namespace srlm::testing_util {

std::string MakeTempDir(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp ? tmp : "/tmp") + "/" + prefix + "XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return std::string(buf.data());
}

void RemoveTree(const std::string& path) {
  // Not std::filesystem::remove_all: libtorch.so exports an incompatible copy of it that crashes.
  if (path.find('\'') != std::string::npos || path.size() < 6) return;
  const std::string cmd = "rm -rf '" + path + "'";
  if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", path.c_str());
}

int RunHfReference(const std::string& args) {
  const char* python = std::getenv("SRLM_VENV_PYTHON");
  const char* source = std::getenv("SRLM_SOURCE_DIR");
  std::string py = python ? python : "python3";
  std::string src = source ? source : ".";
  std::string cmd = "HF_HUB_DISABLE_PROGRESS_BARS=1 TQDM_DISABLE=1 " + py + " " + src +
                    "/worker/model/testdata/hf_reference.py " + args + " 2>&1";
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

torch::Device TestDevice() {
  const char* name = std::getenv("SRLM_TEST_DEVICE");
  return torch::Device(name && *name ? name : "cpu");
}

}  // namespace srlm::testing_util
