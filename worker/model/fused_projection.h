// FusedProjection: Linear layers that read the same input (q/k/v, or gate/up) made to share one
// contiguous weight (and bias) buffer, so that inference runs one matmul instead of several. Each
// layer's parameter becomes a view into the buffer: the same leaf tensor with the same values, so
// the optimizer, gradient sync and checkpoints see every layer as before, and no memory is added.
// Anything that gives a parameter new storage (Module::to, a load that assigns tensors) breaks the
// sharing; the next Forward notices (a pointer comparison per layer) and fuses again.
#pragma once

#include <vector>

#include <torch/torch.h>

#include "worker/model/packed_linear.h"

namespace srlm {

class FusedProjection {
 public:
  explicit FusedProjection(std::vector<torch::nn::Linear> parts);
  // x (..., in_features) -> (..., sum of the layers' out_features), the layers' outputs side by
  // side in order.
  torch::Tensor Forward(const torch::Tensor& x);

 private:
  bool Shared() const;
  void Fuse();

  std::vector<torch::nn::Linear> parts_;
  bool with_bias_ = false;   // every layer has a bias
  bool mixed_bias_ = false;  // some do and some do not: never fused
  torch::Tensor weight_, bias_;
  PackedLinear matmul_;  // the one inference matmul over weight_
};

}  // namespace srlm
