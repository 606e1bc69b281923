// Tests for worker/model/batched_generation.h under a real allocation failure, so a batch whose KV
// cache does not fit is split and the outputs equal those of a batch that fits. On the CPU an
// address-space limit (setrlimit RLIMIT_AS) makes libtorch's CPU allocator fail the way it does when
// memory runs out; on CUDA (SRLM_TEST_DEVICE) the cache is sized past any GPU's memory for 64
// sequences (410 GB), and CUDA's caching allocator throws OutOfMemoryError.
#include "worker/model/batched_generation.h"

#include <optional>
#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"

#include "common/testing/address_space_limit.h"
#include "worker/model/checkpoint_io.h"
#include "worker/model/model_test_util.h"
#include "worker/model/out_of_memory.h"

namespace srlm {
namespace {

using testing_util::AddressSpaceLimit;
using testing_util::TestDevice;

// Id i decodes to the letter 'a' + i % 26.
class LetterTokenizer : public Tokenizer {
 public:
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text) const override {
    std::vector<int32_t> ids;
    for (char c : text) ids.push_back(c - 'a');
    return ids;
  }
  absl::StatusOr<std::string> Decode(const std::vector<int32_t>& ids) const override {
    std::string s;
    for (int32_t id : ids) s.push_back(static_cast<char>('a' + id % 26));
    return s;
  }
  int32_t eos_id() const override { return -1; }
};

// 2 layers of 4 key/value heads of 16: 1 KiB of KV cache per token of a sequence.
LlamaModel TinyModel() {
  LlamaConfig config;
  config.vocab_size = 64;
  config.hidden_size = 64;
  config.intermediate_size = 96;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 4;
  config.num_key_value_heads = 4;
  config.max_position_embeddings = 1 << 28;
  LlamaModel model(config);
  InitializeWeights(model, /*seed=*/7, /*std=*/0.5);
  model->to(TestDevice());
  model->eval();
  return model;
}

// Sequences end soon (half of the ids end one), but the cache is sized for max_new_tokens: 64
// sequences of 4 + 4000 tokens need 4 x 64 MiB of KV cache (only the filled part of the cache is
// attended to, so its size does not change the outputs).
SamplingOptions ShortSamplesInALongCache(int64_t max_new_tokens = 4000) {
  SamplingOptions sampling;
  sampling.temperature = 1.0;
  sampling.max_new_tokens = max_new_tokens;
  for (int32_t id = 0; id < 32; ++id) sampling.extra_eos_ids.push_back(id);
  return sampling;
}

TEST(BatchedGenerator, ABatchThatRunsOutOfMemoryIsSplitAndGivesTheSameOutput) {
  LlamaModel model = TinyModel();
  LetterTokenizer tokenizer;
  const SamplingOptions sampling = ShortSamplesInALongCache();
  std::vector<std::vector<int32_t>> prompts;
  std::vector<uint64_t> seeds;
  for (int i = 0; i < 64; ++i) {
    prompts.push_back({1, 40 + i % 20, 33, 50 - i % 7});
    seeds.push_back(1000 + i);
  }
  BatchedGenerator unconstrained(64);
  auto reference = unconstrained.Generate(model, tokenizer, prompts, sampling, seeds);
  ASSERT_TRUE(reference.ok()) << reference.status();
  EXPECT_EQ(unconstrained.batch_limit(), 64);
  int64_t tokens = 0;
  for (const Generation& g : *reference) tokens += static_cast<int64_t>(g.tokens.size());
  ASSERT_GT(tokens, 64) << "the samples should not all be empty";

  BatchedGenerator limited(64);
  absl::StatusOr<std::vector<Generation>> split;
  if (TestDevice().is_cuda()) {  // 6.4 GB per sequence: 64 need 410 GB, 8 need 51 GB
    split = limited.Generate(model, tokenizer, prompts, ShortSamplesInALongCache(6'250'000), seeds);
  } else {
    AddressSpaceLimit limit(160ll << 20);  // 64 sequences need 256 MiB of cache; 16 need 64 MiB
    ASSERT_TRUE(limit.ok());
    split = limited.Generate(model, tokenizer, prompts, sampling, seeds);
  }
  ASSERT_TRUE(split.ok()) << split.status();
  EXPECT_LT(limited.batch_limit(), 64);
  EXPECT_GE(limited.batch_limit(), 1);
  ASSERT_EQ(split->size(), reference->size());
  for (size_t i = 0; i < split->size(); ++i) {
    EXPECT_EQ((*split)[i].tokens, (*reference)[i].tokens) << "sequence " << i;
    EXPECT_EQ((*split)[i].finish_reason, (*reference)[i].finish_reason) << "sequence " << i;
  }
}

TEST(BatchedGenerator, OneSequenceThatDoesNotFitSaysWhatToLower) {
  LlamaModel model = TinyModel();
  LetterTokenizer tokenizer;
  const bool cuda = TestDevice().is_cuda();
  const int64_t new_tokens = cuda ? 250'000'000 : 500'000;  // one sequence: 256 GB on CUDA, 512 MiB on the CPU
  const SamplingOptions sampling = ShortSamplesInALongCache(new_tokens);
  BatchedGenerator generator(4);
  absl::StatusOr<std::vector<Generation>> out;
  {
    std::optional<AddressSpaceLimit> limit;
    if (!cuda) ASSERT_TRUE(limit.emplace(160ll << 20).ok());
    out = generator.Generate(model, tokenizer, {{1, 2}, {1, 3}, {1, 4}}, sampling, {1, 2, 3});
  }
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted) << out.status();
  EXPECT_NE(out.status().message().find(absl::StrCat("one sequence (a prompt of 2 tokens and up to ", new_tokens,
                                                     " new ones) does not fit in memory; lower the new tokens "
                                                     "(generate.max_new_tokens)")),
            std::string::npos)
      << out.status();
  EXPECT_EQ(generator.batch_limit(), 1);
}

// libtorch's allocation failures are told apart from other errors (out_of_memory.h).
TEST(OutOfMemory, TellsAllocationFailuresFromOtherErrors) {
  try {
    torch::empty({int64_t{1} << 46}, torch::kFloat32);  // 256 TiB
    ADD_FAILURE() << "a 256 TiB allocation succeeded";
  } catch (const c10::Error& e) {
    EXPECT_TRUE(IsOutOfMemory(e)) << e.msg();
  }
  try {
    torch::ones({2, 3}).view({7});
    ADD_FAILURE() << "a view of 7 elements on 6 succeeded";
  } catch (const c10::Error& e) {
    EXPECT_FALSE(IsOutOfMemory(e)) << e.msg();
  }
}

}  // namespace
}  // namespace srlm
