// Tests worker/model/packed_linear.h against at::linear: same values (float32 and bfloat16), a new
// packed copy after every kind of weight change, and exactly at::linear (with gradients) in grad mode.
#include "worker/model/packed_linear.h"

#include <gtest/gtest.h>

namespace srlm {
namespace {

void ExpectMatchesLinear(PackedLinear& packed, const torch::Tensor& x, const torch::Tensor& w,
                         const std::optional<torch::Tensor>& b, double rtol, double atol) {
  torch::NoGradGuard no_grad;
  const torch::Tensor expected = at::linear(x, w, b);
  const torch::Tensor got = packed.Forward(x, w, b);
  ASSERT_TRUE(packed.last_was_packed()) << "this libtorch has no oneDNN linear; the test checks nothing";
  ASSERT_EQ(got.sizes(), expected.sizes());
  EXPECT_TRUE(torch::allclose(got.to(torch::kFloat32), expected.to(torch::kFloat32), rtol, atol))
      << "max abs difference " << (got.to(torch::kFloat32) - expected.to(torch::kFloat32)).abs().max().item<double>();
}

TEST(PackedLinear, MatchesLinearForEveryBatchShapeAndDtype) {
  torch::manual_seed(0);
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    const double rtol = dtype == torch::kFloat32 ? 1e-5 : 1e-2, atol = dtype == torch::kFloat32 ? 1e-5 : 1e-2;
    auto w = torch::randn({96, 40}).to(dtype);
    auto b = torch::randn({96}).to(dtype);
    PackedLinear packed;
    for (int64_t rows : {1, 3, 16, 37}) {
      ExpectMatchesLinear(packed, torch::randn({rows, 40}).to(dtype), w, std::nullopt, rtol, atol);
      ExpectMatchesLinear(packed, torch::randn({2, rows, 40}).to(dtype), w, b, rtol, atol);
    }
  }
}

TEST(PackedLinear, StridedBiasAndNoAutogradHistory) {
  torch::manual_seed(3);
  auto w = torch::randn({24, 12}, torch::requires_grad());  // a parameter, as in the model
  auto wide_bias = torch::randn({48});
  PackedLinear packed;
  ExpectMatchesLinear(packed, torch::randn({5, 12}), w, wide_bias.slice(0, 0, 48, 2), 1e-5, 1e-5);
  torch::NoGradGuard no_grad;
  EXPECT_FALSE(packed.Forward(torch::randn({2, 12}), w, std::nullopt).requires_grad());
}

TEST(PackedLinear, RepacksAfterInPlaceUpdateNewStorageAndInInferenceMode) {
  torch::manual_seed(1);
  auto w = torch::randn({32, 16});
  auto x = torch::randn({4, 16});
  PackedLinear packed;
  ExpectMatchesLinear(packed, x, w, std::nullopt, 1e-5, 1e-5);
  {
    torch::NoGradGuard no_grad;
    w.mul_(-2.0);  // an optimizer step: same storage, new version
  }
  ExpectMatchesLinear(packed, x, w, std::nullopt, 1e-5, 1e-5);
  w = torch::randn({32, 16});  // a load: new storage
  ExpectMatchesLinear(packed, x, w, std::nullopt, 1e-5, 1e-5);
  {
    c10::InferenceMode inference;  // packed in inference mode, used after it
    ExpectMatchesLinear(packed, x, w, std::nullopt, 1e-5, 1e-5);
  }
  ExpectMatchesLinear(packed, x, w, std::nullopt, 1e-5, 1e-5);
}

TEST(PackedLinear, GradModeIsExactlyLinearWithGradients) {
  torch::manual_seed(2);
  auto w = torch::randn({8, 5}, torch::requires_grad());
  auto x = torch::randn({3, 5});
  PackedLinear packed;
  auto y = packed.Forward(x, w, std::nullopt);
  EXPECT_FALSE(packed.last_was_packed());
  EXPECT_TRUE(torch::equal(y, at::linear(x, w)));
  y.sum().backward();
  ASSERT_TRUE(w.grad().defined());
  EXPECT_TRUE(torch::allclose(w.grad(), x.sum(0).expand({8, 5})));
}

}  // namespace
}  // namespace srlm
