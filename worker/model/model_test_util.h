// Helpers shared by the model tests: temporary folders and the transformers reference script.
#pragma once

#include <string>

namespace srlm::testing_util {

// A fresh folder under TMPDIR (or /tmp), removed by RemoveTree.
std::string MakeTempDir(const std::string& prefix);
void RemoveTree(const std::string& path);
// Runs worker/model/testdata/hf_reference.py with `args` under the venv python; returns the exit
// code (its output goes to the test log).
int RunHfReference(const std::string& args);

}  // namespace srlm::testing_util
