// Where a benchmark's device time goes: records a region with PyTorch's Kineto profiler (CPU ops,
// and on CUDA the GPU kernels and copies) and prints the GPU's busy time against the wall time, the
// kernels' time by kind (matrix products, attention, elementwise and the rest) and the top kernels.
// On the CPU, where no kernel is recorded, it prints the top ATen operators by inclusive time.
// For benchmarks only (bench/train_step_bench --profile): the profiler itself slows the region.
#pragma once

#include <string>

namespace srlm::bench {

class KernelProfile {
 public:
  // Starts recording on this thread (and the GPU when `cuda`).
  explicit KernelProfile(bool cuda);
  // Stops recording and prints the summary: `top` rows, times divided by `steps` (per step).
  void StopAndPrint(int top, int steps);

 private:
  long long start_ns_;
};

}  // namespace srlm::bench
