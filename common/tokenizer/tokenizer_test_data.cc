// Builds the tokenizer test data on first use; a gtest Environment removes it at the end.
#include "common/tokenizer/tokenizer_test_data.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

namespace srlm::testing_util {
namespace {

std::string Env(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : fallback;
}

std::string* g_dir = nullptr;

class RemoveTestDataEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    if (g_dir != nullptr) std::filesystem::remove_all(*g_dir);
  }
};

const auto* const kEnvironment = ::testing::AddGlobalTestEnvironment(new RemoveTestDataEnvironment);

}  // namespace

const std::string& TokenizerTestDataDir() {
  static const std::string dir = [] {
    std::string templ = (std::filesystem::temp_directory_path() / "srlm_tokenizer_test_XXXXXX").string();
    if (mkdtemp(templ.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
    g_dir = new std::string(templ);
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
  std::string script_path = (std::filesystem::temp_directory_path() / "srlm_tok_py_XXXXXX").string();
  const int fd = mkstemp(script_path.data());
  if (fd < 0) return "";
  close(fd);
  std::ofstream(script_path) << code;
  FILE* pipe = popen((python + " " + script_path).c_str(), "r");
  std::string out;
  if (pipe != nullptr) {
    std::array<char, 65536> buffer;
    size_t n;
    while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) out.append(buffer.data(), n);
    if (pclose(pipe) != 0) out.clear();
  }
  std::filesystem::remove(script_path);
  return out;
}

}  // namespace srlm::testing_util
