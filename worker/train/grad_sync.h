// Data-parallel gradient synchronisation: gradients are flattened into float32 buckets (~25 MB
// each), summed over all ranks, and divided by the global loss weight (the number of examples, or
// of tokens for SFT) so that a rank with fewer examples, or none, is weighted right. A NaN or Inf
// in any rank's gradients makes every rank skip the step: the flag is all-reduced first.
// Synchronize is a collective: every rank calls it once per optimizer step, in the same order.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/train/communicator.h"

namespace srlm {

struct GradSyncResult {
  bool skipped = false;       // some rank had a non-finite gradient; grads are zeroed
  double global_weight = 0;   // the sum of local weights over ranks
  double allreduce_seconds = 0;  // wall time spent in the gradient all-reduce
};

class GradientSynchronizer {
 public:
  static constexpr int64_t kDefaultBucketBytes = 25 << 20;

  // `params` are the trained parameters (their .grad() is read and replaced).
  GradientSynchronizer(std::vector<torch::Tensor> params, Communicator* communicator,
                       int64_t bucket_bytes = kDefaultBucketBytes);

  // Collective. Each rank's gradients hold the gradient of the SUM of its local losses, and
  // `local_weight` is the count that loss is a sum over. `host_sums` (same length on every rank)
  // is summed over ranks in the same message as the weight (for loss/metric reporting).
  absl::StatusOr<GradSyncResult> Synchronize(double local_weight, std::vector<double>* host_sums = nullptr);

  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }

 private:
  struct Bucket {
    std::vector<size_t> param_indices;
    int64_t numel = 0;
    torch::Tensor flat;  // (numel) float32, on the parameters' device
  };
  void BuildBuckets(int64_t bucket_bytes);

  std::vector<torch::Tensor> params_;
  Communicator* communicator_;
  std::vector<Bucket> buckets_;
};

}  // namespace srlm
