// Builds the tokenizer test data on first use; a gtest Environment removes it at the end.
#include "common/tokenizer/tokenizer_test_data.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>

#include "common/testing/temp_dir.h"

namespace srlm::testing_util {
namespace {

std::string Env(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : fallback;
}

TempDir* g_dir = nullptr;

class RemoveTestDataEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    delete g_dir;
    g_dir = nullptr;
  }
};

const auto* const kEnvironment = ::testing::AddGlobalTestEnvironment(new RemoveTestDataEnvironment);

}  // namespace

const std::string& TokenizerTestDataDir() {
  static const std::string dir = [] {
    g_dir = new TempDir("srlm_tokenizer_test_");
    const std::string templ = g_dir->path();
    const std::string python = Env("SRLM_VENV_PYTHON", "/work/main/.venv/bin/python");
    const std::string script =
        Env("SRLM_SOURCE_DIR", "/work/main") + std::string("/common/tokenizer/testdata/make_tokenizer_testdata.py");
    const std::string command = python + " " + script + " " + templ;
    const int rc = std::system(command.c_str());
    if (rc != 0) ADD_FAILURE() << "test data generation failed (" << rc << "): " << command;
    return templ;
  }();
  return dir;
}

std::string RunPython(const std::string& code) {
  const std::string python = Env("SRLM_VENV_PYTHON", "/work/main/.venv/bin/python");
  TempDir dir("srlm_tok_py_");
  const std::string script_path = dir / "script.py";
  std::ofstream(script_path) << code;
  FILE* pipe = popen((python + " " + script_path).c_str(), "r");
  std::string out;
  if (pipe != nullptr) {
    std::array<char, 65536> buffer;
    size_t n;
    while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) out.append(buffer.data(), n);
    if (pclose(pipe) != 0) out.clear();
  }
  return out;
}

}  // namespace srlm::testing_util
