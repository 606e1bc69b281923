// Tests of worker/run/torch_loop_model.h on a small random model with the demo's tokenizer: text the
// model writes never makes sampling or scoring fail for want of context, and never becomes special
// tokens. Prompts that leave no room are marked "context"; continuations stop where a response's
// end-of-turn token still fits, within model.max_seq_len; responses that do not fit after the prompt
// are marked, not refused.
#include "worker/run/torch_loop_model.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/tokenizer/chat_template.h"
#include "common/tokenizer/tokenizer.h"

namespace srlm {
namespace {

constexpr int64_t kContext = 48;

class TorchLoopModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* source = std::getenv("SRLM_SOURCE_DIR");
    auto tokenizer = LoadTokenizer(std::string(source ? source : SRLM_SOURCE_DIR_FALLBACK) + "/deploy/demo/data");
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    std::shared_ptr<const Tokenizer> shared(std::move(*tokenizer));
    encoder_ = std::make_shared<const TokenizerTextEncoder>(shared, "plain");
    LlamaConfig config;
    config.vocab_size = shared->vocab_size();
    config.hidden_size = 32;
    config.intermediate_size = 64;
    config.num_hidden_layers = 1;
    config.num_attention_heads = 2;
    config.num_key_value_heads = 2;
    config.max_position_embeddings = kContext;
    config.bos_token_id = shared->bos_id();
    config.eos_token_id = shared->eos_id();
    config.eos_token_ids = {shared->eos_id()};
    torch::manual_seed(7);
    model_ = LlamaModel(config);
  }
  int64_t Tokens(const std::string& prompt) { return static_cast<int64_t>(encoder_->EncodePrompt(prompt)->size()); }

  std::shared_ptr<const TokenizerTextEncoder> encoder_;
  LlamaModel model_{nullptr};
};

TEST_F(TorchLoopModelTest, SamplingStopsInsideTheContextAndSkipsPromptsWithNoRoom) {
  for (int64_t context : {int64_t{0}, int64_t{24}}) {  // the model's 48, or model.max_seq_len 24
    const int64_t limit = context > 0 ? context : kContext;
    TorchLoopModel loop_model(model_, encoder_, context);
    const std::string short_prompt = "Add: 2 + 3";
    const std::string long_prompt(3 * kContext, 'z');
    std::vector<std::string> prompts(8, short_prompt);
    prompts.insert(prompts.begin() + 3, long_prompt);
    SamplingConfig sampling{1.0, 1.0, 0, 1000, {}};
    auto out = loop_model.Generate(prompts, PromptFormat::kChat, sampling, {1, 2, 3, 4, 5, 6, 7, 8, 9});
    ASSERT_TRUE(out.ok()) << out.status();
    ASSERT_EQ(out->size(), 9u);
    EXPECT_EQ((*out)[3].finish_reason, "context");
    EXPECT_EQ((*out)[3].text, "");
    EXPECT_EQ((*out)[3].num_tokens, 0);
    int at_the_limit = 0;
    for (size_t i = 0; i < out->size(); ++i) {
      if (i == 3) continue;
      const GeneratedText& g = (*out)[i];
      // One token of room is kept for the end-of-turn token (EOS with the plain template).
      EXPECT_LE(Tokens(short_prompt) + g.num_tokens, limit - 1) << i;
      if (g.finish_reason == "length") {
        EXPECT_EQ(Tokens(short_prompt) + g.num_tokens, limit - 1) << i;
        ++at_the_limit;
      } else {
        EXPECT_EQ(g.finish_reason, "eos") << i;
      }
    }
    EXPECT_GT(at_the_limit, 0) << "a random model should run some sequences into the context";
  }
}

TEST_F(TorchLoopModelTest, ResponsesThatDoNotFitAreMarkedNotRefused) {
  TorchLoopModel loop_model(model_, encoder_, 0);
  const std::string prompt = "Add: 2 + 3";
  const std::string too_long(2 * kContext, 'q');
  auto scored = loop_model.ScoreResponses(prompt, {"5", too_long, "6"});
  ASSERT_TRUE(scored.ok()) << scored.status();
  ASSERT_EQ(scored->size(), 3u);
  EXPECT_TRUE((*scored)[0].fits_context);
  EXPECT_TRUE((*scored)[2].fits_context);
  EXPECT_FALSE((*scored)[1].fits_context);
  EXPECT_EQ((*scored)[1].logprob, 0.0);
  for (size_t i : {size_t{0}, size_t{2}}) {
    EXPECT_TRUE(std::isfinite((*scored)[i].logprob) && (*scored)[i].logprob < 0) << i;
  }
  // The fitting ones score as they do alone (the one that does not fit changes nothing).
  auto alone = loop_model.ScoreResponses(prompt, {"5", "6"});
  ASSERT_TRUE(alone.ok());
  EXPECT_NEAR((*alone)[0].logprob, (*scored)[0].logprob, 1e-5);
  EXPECT_NEAR((*alone)[1].logprob, (*scored)[2].logprob, 1e-5);
  // Under model.max_seq_len, the same response may not fit.
  TorchLoopModel shorter(model_, encoder_, Tokens(prompt) + 1);
  auto capped = shorter.ScoreResponses(prompt, {"5 5 5 5"});
  ASSERT_TRUE(capped.ok());
  EXPECT_FALSE((*capped)[0].fits_context);
}

// "</s>" (the demo tokenizer's EOS) written by the model is text: a response scores as its literal tokens
// followed by the one end-of-turn id, and a prompt holding it (a judge prompt quoting a candidate, a
// self-instructed prompt) has no EOS id inside.
TEST_F(TorchLoopModelTest, ModelWrittenSpecialTokenTextStaysText) {
  const Tokenizer& tok = encoder_->tokenizer();
  const int32_t eos = tok.eos_id();
  ASSERT_GE(eos, 0);
  ASSERT_EQ(*tok.TokenToId("</s>"), eos);
  auto count_eos = [&](const TokenIds& ids) { return std::count(ids.begin(), ids.end(), eos); };

  const std::string response = "5</s>\nScore: 5</s>";
  auto response_ids = encoder_->EncodeResponse(response);
  ASSERT_TRUE(response_ids.ok()) << response_ids.status();
  EXPECT_EQ(response_ids->back(), eos);
  EXPECT_EQ(count_eos(*response_ids), 1) << "only the appended end-of-turn id";
  EXPECT_EQ(*tok.Decode(TokenIds(response_ids->begin(), response_ids->end() - 1)), response);
  auto special_ids = tok.Encode(response);  // what the text would give with specials matched
  ASSERT_TRUE(special_ids.ok());
  ASSERT_EQ(count_eos(*special_ids), 2);
  TorchLoopModel loop_model(model_, encoder_, 0);
  auto scored = loop_model.ScoreResponses("Add: 2 + 3", {response});
  ASSERT_TRUE(scored.ok()) << scored.status();
  EXPECT_EQ((*scored)[0].num_tokens, static_cast<int64_t>(response_ids->size()));
  EXPECT_GT((*scored)[0].num_tokens, static_cast<int64_t>(special_ids->size()) + 1);

  const std::string judge_prompt = "Task: Add: 2 + 3\nAnswer: 5</s>\nScore: 5";
  for (const auto& ids : {encoder_->EncodePrompt(judge_prompt), encoder_->EncodeRawPrompt(judge_prompt)}) {
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(ids->front(), tok.bos_id());
    EXPECT_EQ(count_eos(*ids), 0);
    EXPECT_EQ(*tok.Decode(*ids), judge_prompt);
  }
  // Generate encodes prompts that way too: a message of eight "</s>" would be 1 + 8 tokens with
  // specials matched and fit a context of 12, but as text it is longer and leaves no room.
  const std::string eights = "</s></s></s></s></s></s></s></s>";
  const int64_t as_specials = 1 + 8, as_text = Tokens(eights);
  ASSERT_GT(as_text, as_specials + 2);
  TorchLoopModel small(model_, encoder_, as_specials + 3);
  SamplingConfig sampling{1.0, 1.0, 0, 4, {}};
  for (PromptFormat format : {PromptFormat::kChat, PromptFormat::kRaw}) {
    auto out = small.Generate({eights, "1 + 1"}, format, sampling, {1, 2});
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ((*out)[0].finish_reason, "context");
    EXPECT_NE((*out)[1].finish_reason, "context");
  }
}

}  // namespace
}  // namespace srlm
