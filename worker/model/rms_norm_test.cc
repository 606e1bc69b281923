// RMSNorm's CPU loops (worker/model/rms_norm_cpu.h) against the formula written as ATen ops
// (transformers' LlamaRMSNorm): forward in inference and training, float32 and bfloat16; backward
// against the same formula in float64; row lengths with and without a tail after the 16-lane sums;
// rows of very different scales; inputs the loops do not take.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "worker/model/llama.h"
#include "worker/model/rms_norm_cpu.h"

namespace srlm {
namespace {

torch::Tensor Reference(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  auto xf = x.to(torch::kFloat32);
  return weight * (xf * torch::rsqrt(xf.pow(2).mean(-1, true) + eps)).to(x.scalar_type());
}

// Rows of very different scales (1e-3 .. 1e3), so that the float32 accumulation matters.
torch::Tensor ScaledRows(std::vector<int64_t> shape, torch::ScalarType dtype) {
  return (torch::randn(shape) * torch::logspace(-3, 3, shape[1]).view({1, -1, 1})).to(dtype);
}

void ExpectSameValues(const torch::Tensor& actual, const torch::Tensor& expected, const std::string& what) {
  ASSERT_EQ(actual.scalar_type(), expected.scalar_type()) << what;
  const double max_diff = (actual.to(torch::kFloat64) - expected.to(torch::kFloat64)).abs().max().item<double>();
  if (actual.scalar_type() == torch::kFloat32) {
    EXPECT_TRUE(torch::allclose(actual, expected, 1e-6, 1e-7)) << what << ": max difference " << max_diff;
  } else {
    // The sums of squares may differ in the last float32 bit, which can move a rounding to
    // bfloat16 by one step: at most 2^-5 for outputs below 8 in magnitude (weights <= 1.5).
    EXPECT_LE(max_diff, 1.0 / 32) << what;
    EXPECT_GE((actual == expected).to(torch::kFloat32).mean().item<double>(), 0.99) << what;
  }
}

TEST(RMSNorm, LoopsMatchTheAtenFormula) {
  torch::manual_seed(7);
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (int64_t C : {96, 100, 7}) {
      auto weight = (torch::rand({C}) + 0.5).to(dtype);
      for (std::vector<int64_t> shape : {std::vector<int64_t>{1, 1, C}, {3, 17, C}, {2, 5, C}}) {
        auto x = ScaledRows(shape, dtype);
        ASSERT_TRUE(RmsNormCpuSupports(x, weight));
        const std::string what = std::string(c10::toString(dtype)) + " C " + std::to_string(C);
        torch::Tensor expected = Reference(x, weight, 1e-5);
        ExpectSameValues(RmsNormInference(x, weight, 1e-5), expected, what + " inference");
        ExpectSameValues(RmsNormTraining(x, weight, 1e-5).detach(), expected, what + " training");
      }
    }
  }
}

TEST(RMSNorm, TrainingGradientsMatchFloat64) {
  torch::manual_seed(11);
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (int64_t C : {64, 37}) {
      auto x = ScaledRows({4, 9, C}, dtype).requires_grad_(true);
      auto weight = (torch::rand({C}) + 0.5).to(dtype).requires_grad_(true);
      auto upstream = torch::randn({4, 9, C});
      (RmsNormTraining(x, weight, 1e-5) * upstream.to(dtype)).sum().backward();
      // The formula in float64 on the same (rounded) inputs, without the intermediate rounding.
      auto x64 = x.detach().to(torch::kFloat64).requires_grad_(true);
      auto w64 = weight.detach().to(torch::kFloat64).requires_grad_(true);
      (w64 * (x64 * torch::rsqrt(x64.pow(2).mean(-1, true) + 1e-5)) * upstream.to(dtype).to(torch::kFloat64))
          .sum()
          .backward();
      // float32: reassociation only; bfloat16: one rounding of each gradient (2^-8 relative).
      const double tolerance = dtype == torch::kFloat32 ? 1e-5 : 1e-2;
      for (auto [name, actual, expected] : {std::tuple<std::string, torch::Tensor, torch::Tensor>{"dx", x.grad(), x64.grad()},
                                            {"dweight", weight.grad(), w64.grad()}}) {
        ASSERT_EQ(actual.scalar_type(), dtype) << name;
        const double error = (actual.to(torch::kFloat64) - expected).norm().item<double>() / expected.norm().item<double>();
        EXPECT_LT(error, tolerance) << name << " " << c10::toString(dtype) << " C " << C;
      }
    }
  }
}

TEST(RMSNorm, ModuleUsesTheLoopsOnCpuAndTheOpsOtherwise) {
  RMSNorm norm(8, 1e-6);
  auto x = torch::randn({2, 3, 8});
  EXPECT_TRUE(norm->forward(x).grad_fn()->name().find("RmsNormFunction") != std::string::npos)
      << norm->forward(x).grad_fn()->name();
  auto strided = torch::randn({8, 4}).t();  // not contiguous: the ATen ops
  EXPECT_FALSE(RmsNormCpuSupports(strided, norm->weight));
  EXPECT_FALSE(RmsNormCpuSupports(torch::randn({2, 8}, torch::kFloat64), norm->weight.to(torch::kFloat64)));
  EXPECT_FALSE(RmsNormCpuSupports(torch::randn({2, 8}).to(torch::kBFloat16), norm->weight));  // mixed dtypes
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose(norm->forward(strided), Reference(strided.contiguous(), norm->weight, 1e-6), 1e-6, 1e-7));
}

}  // namespace
}  // namespace srlm
