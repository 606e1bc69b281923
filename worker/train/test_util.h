// Test helpers for the trainer's tests: temporary folders and calling the Python reference.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "common/testing/file_text.h"
#include "common/testing/temp_dir.h"

namespace srlm::testing {

inline std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : fallback;
}

inline std::string SourceDir() { return EnvOr("SRLM_SOURCE_DIR", "/work/main"); }
inline std::string BuildDir() { return EnvOr("SRLM_BUILD_DIR", "/work/main/build-trainer"); }
inline std::string VenvPython() { return EnvOr("SRLM_VENV_PYTHON", SourceDir() + "/.venv/bin/python"); }

// A fresh folder under the temporary directory, removed by the destructor.
using ::srlm::testing_util::TempDir;

using ::srlm::testing_util::ReadFileText;
using ::srlm::testing_util::WriteFileText;

// Runs a command through the shell; returns its exit status.
inline int Shell(const std::string& command) {
  const int rc = std::system(command.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

// Runs worker/train/testdata/<script> on a JSON request and returns its JSON answer.
inline nlohmann::json RunPythonReference(const std::string& script, const nlohmann::json& request,
                                         const TempDir& dir) {
  const std::string in = dir / "request.json", out = dir / "answer.json";
  WriteFileText(in, request.dump());
  const std::string cmd = VenvPython() + " " + SourceDir() + "/worker/train/testdata/" + script + " " + in + " " +
                          out + " 2>" + (dir / "python.err");
  const int rc = Shell(cmd);
  EXPECT_EQ(rc, 0) << cmd << "\n" << ReadFileText(dir / "python.err");
  return rc == 0 ? nlohmann::json::parse(ReadFileText(out)) : nlohmann::json();
}

}  // namespace srlm::testing
