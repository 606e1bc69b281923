// Keyed dropout (worker/model/keyed_dropout.h): a row's mask depends on its key, the site and its
// positions only (not on the other rows, the padding or the row's place in the batch); kept values
// are scaled by 1/(1-p) within float rounding and the share dropped is p; the gradient is the mask
// times the scale; the global generator is left as it was; shapes that do not match are refused.
// On TestDevice() (SRLM_TEST_DEVICE: the CPU unless set; bench/gpu/run_checks.sh runs it on CUDA);
// the model case on the CPU.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "worker/model/keyed_dropout.h"
#include "worker/model/llama.h"
#include "worker/model/model_test_util.h"

namespace srlm {
namespace {

using ::srlm::testing_util::TestDevice;

torch::Tensor Rows(int64_t B, int64_t T, int64_t C) {
  return torch::arange(1, B * T * C + 1, torch::kFloat32).reshape({B, T, C}).to(TestDevice());  // no zero
}

TEST(KeyedDropout, ARowsMaskDependsOnItsKeyAndPositionsAloneNotOnTheBatch) {
  const double p = 0.4;
  const int64_t C = 16;
  const uint64_t k1 = 11, k2 = 22;
  // k1 (5 tokens) and k2 (3 tokens) padded to 6; k2 alone, unpadded; k2 then k1 padded to 9.
  torch::Tensor x1 = Rows(2, 6, C), x2 = Rows(1, 3, C), x3 = Rows(2, 9, C);
  torch::Tensor y1 = KeyedDropout(x1, p, {{k1, k2}, {5, 3}}, 7);
  torch::Tensor y2 = KeyedDropout(x2, p, {{k2}, {3}}, 7);
  torch::Tensor y3 = KeyedDropout(x3, p, {{k2, k1}, {3, 5}}, 7);
  auto mask = [](const torch::Tensor& y, int64_t row, int64_t length) { return y[row].narrow(0, 0, length).ne(0); };
  EXPECT_TRUE(torch::equal(mask(y1, 0, 5), mask(y3, 1, 5)));
  EXPECT_TRUE(torch::equal(mask(y1, 1, 3), mask(y2, 0, 3)));
  EXPECT_TRUE(torch::equal(mask(y1, 1, 3), mask(y3, 0, 3)));
  // Padding positions are zeroed.
  EXPECT_EQ(y1[1].narrow(0, 3, 3).abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(y3[0].narrow(0, 3, 6).abs().sum().item<float>(), 0.0f);
  // Another key or another site gives another mask; the same ones the same mask.
  EXPECT_FALSE(torch::equal(mask(KeyedDropout(x2, p, {{k1}, {3}}, 7), 0, 3), mask(y2, 0, 3)));
  EXPECT_FALSE(torch::equal(mask(KeyedDropout(x2, p, {{k2}, {3}}, 8), 0, 3), mask(y2, 0, 3)));
  EXPECT_TRUE(torch::equal(KeyedDropout(x2, p, {{k2}, {3}}, 7), y2));
  // The same mask in bfloat16 (the draws are float32 whatever x's type).
  torch::Tensor y2_bf16 = KeyedDropout(x2.to(torch::kBFloat16), p, {{k2}, {3}}, 7);
  EXPECT_TRUE(torch::equal(y2_bf16.ne(0), y2.ne(0)));
}

TEST(KeyedDropout, KeepsOneMinusPOfTheValuesScaledByItsInverse) {
  for (double p : {0.1, 0.5}) {
    torch::Tensor x = torch::full({2, 200, 250}, 3.0f, torch::TensorOptions().device(TestDevice()));
    torch::Tensor y = KeyedDropout(x, p, {{5, 6}, {200, 200}}, 0);
    const torch::Tensor kept = y.ne(0);
    const float scaled = static_cast<float>(3.0 * (1.0 / (1.0 - p)));
    EXPECT_TRUE(torch::allclose(y.masked_select(kept), torch::full({kept.sum().item<int64_t>()}, scaled, x.options()),
                                1e-6, 0));
    // 100,000 draws per row: the binomial standard deviation of the dropped share is below 0.0016.
    for (int64_t b = 0; b < 2; ++b) {
      const double dropped = 1.0 - kept[b].to(torch::kFloat64).mean().item<double>();
      EXPECT_NEAR(dropped, p, 0.01) << "p " << p << " row " << b;
    }
    // Independent rows: the two masks agree where two independent draws would, 1 - 2p(1-p).
    const double agree = kept[0].eq(kept[1]).to(torch::kFloat64).mean().item<double>();
    EXPECT_NEAR(agree, 1 - 2 * p * (1 - p), 0.01) << "p " << p;
  }
  torch::Tensor x = Rows(1, 4, 3);
  EXPECT_TRUE(torch::equal(KeyedDropout(x, 0.0, {}, 0), x));  // p 0: the input, no rows needed
}

TEST(KeyedDropout, TheGradientIsTheMaskTimesTheScale) {
  const double p = 0.3;
  torch::Tensor x = Rows(2, 5, 8).requires_grad_(true);
  torch::Tensor y = KeyedDropout(x, p, {{1, 2}, {5, 4}}, 3);
  (y * 2).sum().backward();
  const torch::Tensor expected = y.detach().ne(0).to(torch::kFloat32) * static_cast<float>(2.0 / (1.0 - p));
  EXPECT_TRUE(torch::allclose(x.grad(), expected, 1e-6, 0));
}

TEST(KeyedDropout, LeavesTheGlobalGeneratorAlone) {
  const auto options = torch::TensorOptions().device(TestDevice());
  torch::manual_seed(3);
  const torch::Tensor first = torch::rand({8}, options);
  torch::manual_seed(3);
  KeyedDropout(Rows(2, 4, 4), 0.5, {{1, 2}, {4, 4}}, 0);
  EXPECT_TRUE(torch::equal(torch::rand({8}, options), first));
}

TEST(KeyedDropout, RefusesRowsThatDoNotMatchTheBatch) {
  torch::Tensor x = Rows(2, 4, 3);
  EXPECT_THROW(KeyedDropout(x, 0.1, {{1}, {4}}, 0), c10::Error);              // one key for two rows
  EXPECT_THROW(KeyedDropout(x, 0.1, {{1, 2}, {4}}, 0), c10::Error);           // one length
  EXPECT_THROW(KeyedDropout(x, 0.1, {{1, 2}, {4, 5}}, 0), c10::Error);        // longer than the batch
  EXPECT_THROW(KeyedDropout(x, 1.0, {{1, 2}, {4, 4}}, 0), c10::Error);        // p outside [0, 1)
  EXPECT_THROW(KeyedDropout(x.view({2, 12}), 0.1, {{1, 2}, {4, 4}}, 0), c10::Error);  // not (B,T,C)
}

// In the model: a training-mode forward with dropout uses the rows set before it, and only it; a
// second forward with none set is refused rather than reusing the last batch's keys.
TEST(KeyedDropout, TheModelUsesEachSetOfRowsForOneForward) {
  LlamaConfig c;
  c.vocab_size = 32;
  c.hidden_size = 16;
  c.intermediate_size = 32;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 2;
  torch::manual_seed(0);
  LlamaModel model(c);
  model->train();
  model->set_dropout(0.5);
  const torch::Tensor ids = torch::randint(0, 32, {2, 5}, torch::kInt64);
  model->set_dropout_rows({{7, 8}, {5, 5}});
  const torch::Tensor first = model->forward(ids);
  model->set_dropout_rows({{7, 8}, {5, 5}});
  EXPECT_TRUE(torch::equal(model->forward(ids), first));  // the same keys, the same masks
  EXPECT_THROW(model->forward(ids), c10::Error);         // none set: the last ones were used up
  model->eval();
  EXPECT_NO_THROW(model->forward(ids));                 // no dropout in eval mode, no rows needed
}

}  // namespace
}  // namespace srlm
