// Helpers shared by the model tests: the transformers reference script and the test device.
// (Temporary folders: common/testing/temp_dir.h.)
#pragma once

#include <string>

#include <torch/torch.h>

namespace srlm::testing_util {

// Runs worker/model/testdata/hf_reference.py with `args` under the venv python; returns the exit
// code (its output goes to the test log).
int RunHfReference(const std::string& args);
// The device the transformers-parity tests run srlm on: SRLM_TEST_DEVICE ("cpu" when unset, or
// "cuda", "cuda:N"; bench/gpu/run_checks.sh sets it on a GPU machine). The reference is always
// transformers on the CPU in float32, so the same tolerances hold on either device.
torch::Device TestDevice();

}  // namespace srlm::testing_util
