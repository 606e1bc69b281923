// Implementation of worker/model/model_test_util.h.
#include "worker/model/model_test_util.h"

#include <sys/wait.h>

#include <cstdlib>

namespace srlm::testing_util {

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
