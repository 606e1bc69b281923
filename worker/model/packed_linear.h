// PackedLinear: the inference matmul y = x W^T + b on CPU through oneDNN, with W reordered once into
// oneDNN's blocked layout and kept until W changes.
//
// Why: a decode step reads every weight once, and on CPU plain at::linear (MKL) repacks W on every
// call (batch > 1) or runs sgemv (batch 1); with W prepacked the layers' matmuls of the benchmark
// model took 24-30% less time at batch 1 and 16 with the weights out of cache (docs/PERFORMANCE.md,
// "Prepacked weights"). The packed copy costs one more copy of the weights in host memory.
//
// In grad mode (training), off CPU, for dtypes other than float32 and bfloat16, when this libtorch
// was built without oneDNN, or for a dtype oneDNN refuses on this CPU (bf16 without AVX-512),
// Forward is exactly at::linear. The packed copy is made again
// when W gets new storage or new values (its version counter moves), so an optimizer step or a
// checkpoint load is never missed. It holds W's storage, so that freed memory reused by a new
// weight at the same address cannot pass for the old one.
#pragma once

#include <optional>

#include <torch/torch.h>

namespace srlm {

class PackedLinear {
 public:
  // x (..., in_features), weight (out_features, in_features), bias (out_features) or nullopt.
  // weight_version: a number that moves whenever weight's values change; weight._version() when
  // not given. A weight whose values are changed through other tensors on its storage
  // (FusedProjection's buffer, updated through the layers' parameters) passes theirs.
  torch::Tensor Forward(const torch::Tensor& x, const torch::Tensor& weight, const std::optional<torch::Tensor>& bias,
                        std::optional<int64_t> weight_version = std::nullopt);
  // The same for a Linear layer's weight and bias (none when undefined).
  torch::Tensor Forward(const torch::Tensor& x, const torch::nn::Linear& layer);

  // Whether the last Forward ran through the packed weight (for tests): only then is a copy held.
  bool last_was_packed() const { return packed_.defined(); }

 private:
  bool Current(const torch::Tensor& weight, int64_t weight_version) const;
  // at::linear, holding no packed copy.
  torch::Tensor Unpacked(const torch::Tensor& x, const torch::Tensor& weight, const std::optional<torch::Tensor>& bias);

  torch::Tensor packed_;  // defined only while the last Forward was packed
  c10::Storage source_storage_;
  int64_t source_offset_ = 0;
  int64_t source_version_ = -1;
};

}  // namespace srlm
