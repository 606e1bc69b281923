// RMSNorm on CPU as loops over rows: transformers' LlamaRMSNorm,
// weight * (x_f32 * rsqrt(mean(x_f32^2) + eps)).to(dtype), for contiguous float32 or bfloat16 tensors.
//
// Why: the same formula as ATen ops is eight kernels (to, pow, mean, add, rsqrt, mul, to, mul), each
// with its dispatch and output allocation, and as many again in backward: ~8 us per call at a decode
// step's shape (1, 1, 256), 9 calls per step of the benchmark model. ATen's _fused_rms_norm is not
// faster on CPU at these shapes, and its CPU backward is slower than the ops' (docs/PERFORMANCE.md,
// "Model"). Forward rounding follows the ATen ops: the normalised row is rounded to x's dtype, then
// multiplied by the weight in float and rounded again; only the order in which the squares are
// summed differs (float32 sums). Backward computes in float32 from the saved 1/rms per row and
// rounds dx and dweight once to the parameters' dtype.
#pragma once

#include <torch/torch.h>

namespace srlm {

// True when these functions take the arguments: CPU, contiguous, x and weight of one dtype (float32
// or bfloat16), weight of x's last size.
bool RmsNormCpuSupports(const torch::Tensor& x, const torch::Tensor& weight);

// x (..., C), weight (C); both require RmsNormCpuSupports(x, weight).
// Inference: records no autograd history.
torch::Tensor RmsNormInference(const torch::Tensor& x, const torch::Tensor& weight, double eps);
// Training: an autograd function whose backward gives x's and weight's gradients.
torch::Tensor RmsNormTraining(const torch::Tensor& x, const torch::Tensor& weight, double eps);

}  // namespace srlm
