// RmsNormInference: transformers' LlamaRMSNorm, weight * (x_f32 * rsqrt(mean(x_f32^2) + eps)).to(dtype),
// as one loop over each row for contiguous float32 or bfloat16 CPU tensors in inference.
//
// Why: the same formula as ATen ops is six kernels (to, pow, mean, add, rsqrt, mul, to, mul), each
// with its dispatch and output allocation: ~8.4 us per call at a decode step's shape (1, 1, 256), 9
// calls per step of the benchmark model. ATen's _fused_rms_norm is not faster on CPU at these shapes
// (measured, docs/PERFORMANCE.md "Model"). Rounding follows the ATen ops: the normalised row is
// rounded to x's dtype, then multiplied by the weight in float and rounded again; only the order in
// which the squares are summed differs (float32 sum).
#pragma once

#include <torch/torch.h>

namespace srlm {

// True when RmsNormInference handles these arguments: CPU, contiguous, x and weight of one dtype
// (float32 or bfloat16), weight of x's last size.
bool RmsNormInferenceSupports(const torch::Tensor& x, const torch::Tensor& weight);

// x (..., C), weight (C). Requires RmsNormInferenceSupports(x, weight). Records no autograd history.
torch::Tensor RmsNormInference(const torch::Tensor& x, const torch::Tensor& weight, double eps);

}  // namespace srlm
