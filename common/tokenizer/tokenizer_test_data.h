// Test helper: builds the tokenizer test data (testdata/make_tokenizer_testdata.py, run with the venv's
// Python) once per test process in a temporary folder, removed when the process's tests end.
#pragma once

#include <string>

namespace srlm::testing_util {

// The folder holding corpus.jsonl and one sub-folder per tokenizer; fails the test when it cannot be built.
const std::string& TokenizerTestDataDir();

// Runs `code` with the venv's Python and returns its stdout (empty on failure).
std::string RunPython(const std::string& code);

}  // namespace srlm::testing_util
