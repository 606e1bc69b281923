// RMSNorm's inference loop on CPU (worker/model/rms_norm_cpu.h) against the ATen ops that training
// uses (transformers' LlamaRMSNorm): float32 and bfloat16, row lengths with and without a tail
// after the 16-lane sums, rows of very different scales, and inputs the loop does not take.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "worker/model/llama.h"
#include "worker/model/rms_norm_cpu.h"

namespace srlm {
namespace {

torch::Tensor Inference(RMSNorm& norm, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  return norm->forward(x);
}

TEST(RMSNorm, InferenceLoopMatchesTrainingOps) {
  torch::manual_seed(7);
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (int64_t C : {96, 100, 7}) {
      RMSNorm norm(C, 1e-5);
      {
        torch::NoGradGuard no_grad;
        norm->weight.uniform_(0.5, 1.5);
      }
      norm->to(dtype);
      for (std::vector<int64_t> shape : {std::vector<int64_t>{1, 1, C}, {3, 17, C}, {2, 5, C}}) {
        // Rows of very different scales (1e-3 .. 1e3), so that the float32 accumulation matters.
        auto x = (torch::randn(shape) * torch::logspace(-3, 3, shape[1]).view({1, -1, 1})).to(dtype);
        ASSERT_TRUE(RmsNormInferenceSupports(x, norm->weight));
        torch::Tensor training = norm->forward(x).detach();  // grad mode: the ATen ops
        torch::Tensor inference = Inference(norm, x);
        ASSERT_EQ(inference.scalar_type(), dtype);
        const double max_diff = (inference.to(torch::kFloat64) - training.to(torch::kFloat64)).abs().max().item<double>();
        if (dtype == torch::kFloat32) {
          EXPECT_TRUE(torch::allclose(inference, training, 1e-6, 1e-7)) << "C " << C << ": max difference " << max_diff;
        } else {
          // The sums of squares may differ in the last float32 bit, which can move a rounding to
          // bfloat16 by one step: at most 2^-5 for outputs below 8 in magnitude (weights <= 1.5).
          EXPECT_LE(max_diff, 1.0 / 32) << "C " << C;
          EXPECT_GE((inference == training).to(torch::kFloat32).mean().item<double>(), 0.99) << "C " << C;
        }
      }
    }
  }
}

TEST(RMSNorm, OtherInputsTakeTheAtenOps) {
  RMSNorm norm(8, 1e-6);
  auto x = torch::randn({8, 4}).t();  // not contiguous
  EXPECT_FALSE(RmsNormInferenceSupports(x, norm->weight));
  EXPECT_FALSE(RmsNormInferenceSupports(torch::randn({2, 8}, torch::kFloat64), norm->weight.to(torch::kFloat64)));
  EXPECT_FALSE(RmsNormInferenceSupports(torch::randn({2, 8}).to(torch::kBFloat16), norm->weight));  // mixed dtypes
  torch::Tensor expected = norm->forward(x.contiguous()).detach();
  EXPECT_TRUE(torch::allclose(Inference(norm, x), expected, 1e-6, 1e-7));
}

}  // namespace
}  // namespace srlm
