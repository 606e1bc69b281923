// FusedProjection against the layers it fuses, run one by one: same outputs, parameters that stay
// the layers' own (an in-place update shows in the fused output), re-fusion after a parameter gets
// new storage, the unfused path when only some layers have a bias, and gradients in training.
#include "worker/model/fused_projection.h"

#include <gtest/gtest.h>

namespace srlm {
namespace {

torch::nn::Linear Layer(int64_t in, int64_t out, bool bias) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
}

torch::Tensor Separate(const std::vector<torch::nn::Linear>& parts, const torch::Tensor& x) {
  std::vector<torch::Tensor> outs;
  for (auto p : parts) outs.push_back(p->forward(x));
  return torch::cat(outs, -1);
}

TEST(FusedProjection, MatchesTheLayersAndSharesTheirParameters) {
  torch::manual_seed(3);
  for (bool bias : {false, true}) {
    std::vector<torch::nn::Linear> parts = {Layer(8, 6, bias), Layer(8, 2, bias), Layer(8, 2, bias)};
    FusedProjection fused(parts);
    torch::NoGradGuard no_grad;
    auto x = torch::randn({3, 5, 8});
    EXPECT_TRUE(torch::allclose(fused.Forward(x), Separate(parts, x), 1e-6, 1e-6)) << "bias " << bias;
    // The layers' weights now lie side by side in one buffer,
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      const auto* end = static_cast<const char*>(parts[i]->weight.data_ptr()) + parts[i]->weight.nbytes();
      EXPECT_EQ(static_cast<const void*>(end), parts[i + 1]->weight.data_ptr()) << "bias " << bias;
    }
    // and stay the layers' own parameters: an in-place update (what the optimizer
    // does) changes the fused output without another fusion.
    const void* before = parts[1]->weight.data_ptr();
    parts[1]->weight.add_(0.5);
    if (bias) parts[2]->bias.mul_(-2);
    EXPECT_TRUE(torch::allclose(fused.Forward(x), Separate(parts, x), 1e-6, 1e-6)) << "bias " << bias;
    EXPECT_EQ(parts[1]->weight.data_ptr(), before);
    EXPECT_TRUE(parts[1]->weight.is_leaf());
    EXPECT_TRUE(parts[1]->weight.requires_grad());
  }
}

TEST(FusedProjection, FusesAgainWhenAParameterGetsNewStorage) {
  torch::manual_seed(4);
  std::vector<torch::nn::Linear> parts = {Layer(4, 3, false), Layer(4, 5, false)};
  FusedProjection fused(parts);
  torch::NoGradGuard no_grad;
  auto x = torch::randn({2, 4});
  (void)fused.Forward(x);
  parts[0]->weight.set_data(torch::randn({3, 4}));  // what a load or Module::to does
  EXPECT_TRUE(torch::allclose(fused.Forward(x), Separate(parts, x), 1e-6, 1e-6));
  for (auto& p : parts) p->to(torch::kFloat64);
  auto x64 = x.to(torch::kFloat64);
  auto out = fused.Forward(x64);
  EXPECT_EQ(out.scalar_type(), torch::kFloat64);
  EXPECT_TRUE(torch::allclose(out, Separate(parts, x64), 1e-12, 1e-12));
}

TEST(FusedProjection, SomeLayersWithABiasRunOneByOne) {
  torch::manual_seed(5);
  std::vector<torch::nn::Linear> parts = {Layer(4, 3, true), Layer(4, 2, false)};
  FusedProjection fused(parts);
  torch::NoGradGuard no_grad;
  auto x = torch::randn({2, 4});
  EXPECT_TRUE(torch::allclose(fused.Forward(x), Separate(parts, x), 1e-6, 1e-6));
}

TEST(FusedProjection, InTrainingGradientsReachEachLayer) {
  torch::manual_seed(6);
  std::vector<torch::nn::Linear> parts = {Layer(4, 3, true), Layer(4, 2, true)};
  FusedProjection fused(parts);
  auto x = torch::randn({2, 4});
  {
    torch::NoGradGuard no_grad;
    (void)fused.Forward(x);  // fused once: training must still reach the layers' own parameters
  }
  fused.Forward(x).pow(2).sum().backward();
  std::vector<torch::Tensor> fused_grads;
  for (auto& p : parts) {
    fused_grads.push_back(p->weight.grad().clone());
    fused_grads.push_back(p->bias.grad().clone());
    p->zero_grad();
  }
  Separate(parts, x).pow(2).sum().backward();
  size_t i = 0;
  for (auto& p : parts) {
    ASSERT_TRUE(p->weight.grad().defined());
    EXPECT_TRUE(torch::allclose(fused_grads[i++], p->weight.grad(), 1e-6, 1e-6));
    EXPECT_TRUE(torch::allclose(fused_grads[i++], p->bias.grad(), 1e-6, 1e-6));
  }
}

}  // namespace
}  // namespace srlm
