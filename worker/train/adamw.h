// AdamW (Loshchilov & Hutter) with PyTorch's update rule, decoupled weight decay on matrices only
// (not on norms' weights or biases), float32 moments, and float32 master weights for parameters
// held in a lower precision. Also global-norm gradient clipping. Not thread-safe.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace srlm {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // applied to parameters with 2 or more dimensions
};

using NamedParameters = std::vector<std::pair<std::string, torch::Tensor>>;

class AdamW {
 public:
  AdamW(NamedParameters params, AdamWOptions options);

  // One update with learning rate `lr` from each parameter's .grad() (undefined grads: skipped).
  void Step(double lr);
  // Number of updates applied so far (drives bias correction).
  int64_t step_count() const { return step_count_; }

  // Optimizer state (step count, moments, master weights) to/from one file (torch archive).
  absl::Status Save(const std::string& path) const;
  absl::Status Load(const std::string& path);

 private:
  struct State {
    std::string name;
    torch::Tensor param;
    torch::Tensor exp_avg;     // float32, shape of param
    torch::Tensor exp_avg_sq;  // float32, shape of param
    torch::Tensor master;      // float32 copy when param is not float32; undefined otherwise
    bool decay = false;
  };
  std::vector<State> states_;
  AdamWOptions options_;
  int64_t step_count_ = 0;
};

// Scales all gradients so that their global L2 norm is at most `max_norm` (as
// torch.nn.utils.clip_grad_norm_). Returns the norm before clipping. max_norm <= 0: only measures.
double ClipGradNorm(const std::vector<torch::Tensor>& params, double max_norm);

}  // namespace srlm
