// srlm's Llama model against Hugging Face transformers: tiny random models that transformers
// creates and saves (fixed seed) load here and give the same logits (rtol 1e-4, atol 1e-5, float32),
// the same padded-batch log-prob sums and the same 32 greedy tokens; models srlm saves load in
// transformers with the same logits. srlm runs on TestDevice() (SRLM_TEST_DEVICE; the CPU unless set).
// Also the input checks of config.json and of the model commands' JSONL files.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "worker/model/checkpoint_io.h"
#include "worker/model/generator.h"
#include "worker/model/sampler.h"
#include "worker/model/logprobs.h"
#include "common/testing/file_text.h"
#include "common/testing/temp_dir.h"
#include "worker/model/model_options.h"
#include "worker/model/model_test_util.h"
#include "worker/model/safetensors.h"

namespace srlm {
namespace {

using testing_util::TempDir;
using testing_util::WriteFileText;
using testing_util::RunHfReference;
using testing_util::TestDevice;

// One transformers-made model per kind, made once per test binary run.
class HfModels {
 public:
  static HfModels& Get() {
    static HfModels models;
    return models;
  }
  std::string Dir(const std::string& kind) {
    if (!made_) {  // one python process makes every kind: importing transformers takes seconds
      made_ = true;
      EXPECT_EQ(RunHfReference("make --kind llama,llama_gqa_tied,llama3_scaling,qwen2,qwen2_tied --out " + root_), 0);
    }
    return root_ + "/" + kind;
  }

 private:
  HfModels() = default;
  TempDir temp_{"srlm_model_test_"};
  const std::string root_ = temp_.path();
  bool made_ = false;
};

std::map<std::string, torch::Tensor> ReadReference(const std::string& path) {
  auto file = SafetensorsFile::Open(path);
  EXPECT_TRUE(file.ok()) << file.status();
  std::map<std::string, torch::Tensor> out;
  for (const auto& e : file->entries()) out[e.name] = *file->Read(e.name);
  return out;
}

void ExpectClose(const torch::Tensor& actual, const torch::Tensor& expected, const std::string& what) {
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  const torch::Tensor on_cpu = actual.cpu();
  const double max_diff = (on_cpu - expected).abs().max().item<double>();
  EXPECT_TRUE(torch::allclose(on_cpu, expected, 1e-4, 1e-5)) << what << ": max abs difference " << max_diff;
}

class HfParity : public ::testing::TestWithParam<std::string> {};

TEST_P(HfParity, LogitsLogprobsAndGreedyMatchTransformers) {
  const std::string dir = HfModels::Get().Dir(GetParam());
  auto ref = ReadReference(dir + "/reference.safetensors");
  auto model = LoadModel(dir, TestDevice(), torch::kFloat32);
  ASSERT_TRUE(model.ok()) << model.status();
  torch::NoGradGuard no_grad;
  auto ids = ref["input_ids"].to(TestDevice(), torch::kInt64);
  ExpectClose((*model)->forward(ids), ref["logits"], "logits");

  // Right-padded batch: the sums must equal those of each row run alone in transformers.
  auto attn = ref["padded_attention_mask"].to(TestDevice(), torch::kInt64);
  auto resp = ref["padded_response_mask"].to(TestDevice(), torch::kInt64);
  auto padded_ids = ids * attn;  // padding id 0
  auto sums = SequenceLogprobs(*model, padded_ids, attn, resp);
  ExpectClose(sums, ref["padded_logprob_sums"], "padded log-prob sums");
  // The same rows left-padded take the masked-attention path (right padding needs no mask).
  auto left_ids = torch::zeros_like(padded_ids), left_attn = torch::zeros_like(attn), left_resp = torch::zeros_like(resp);
  const int64_t T = ids.size(1);
  for (int64_t b = 0; b < ids.size(0); ++b) {
    const int64_t n = attn[b].sum().item<int64_t>();
    left_ids[b].narrow(0, T - n, n).copy_(padded_ids[b].narrow(0, 0, n));
    left_attn[b].narrow(0, T - n, n).copy_(attn[b].narrow(0, 0, n));
    left_resp[b].narrow(0, T - n, n).copy_(resp[b].narrow(0, 0, n));
  }
  ASSERT_FALSE(torch::equal(left_attn, attn)) << "the reference batch has no padding to move";
  ExpectClose(SequenceLogprobs(*model, left_ids, left_attn, left_resp), ref["padded_logprob_sums"],
              "left-padded log-prob sums");

  // Greedy, full recompute each step.
  auto seq = ids.narrow(1, 0, 7).narrow(0, 0, 1);
  for (int step = 0; step < 32; ++step) {
    auto next = (*model)->forward(seq).select(1, seq.size(1) - 1).argmax(-1, true);
    seq = torch::cat({seq, next}, 1);
  }
  EXPECT_TRUE(torch::equal(seq[0].narrow(0, 7, 32).cpu(), ref["greedy_ids"].to(torch::kInt64)))
      << "srlm " << seq[0].narrow(0, 7, 32) << " transformers " << ref["greedy_ids"];
}

TEST_P(HfParity, SavedModelLoadsInTransformersWithSameLogits) {
  const std::string dir = HfModels::Get().Dir(GetParam());
  auto model = LoadModel(dir, TestDevice(), torch::kFloat32);
  ASSERT_TRUE(model.ok()) << model.status();
  TempDir saved("srlm_saved_");
  const std::string& out = saved.path();
  SaveModelOptions options;
  options.max_shard_bytes = 64 * 1024;  // several shards + index, as large checkpoints are written
  ASSERT_TRUE(SaveModel(*model, out, options).ok());
  torch::NoGradGuard no_grad;
  auto ids = torch::randint(3, (*model)->config.vocab_size, {2, 19}, torch::kInt64).to(TestDevice());
  auto logits = (*model)->forward(ids);
  ASSERT_TRUE(
      WriteSafetensors(out + "/srlm_reference.safetensors", {{"input_ids", ids.cpu()}, {"logits", logits.cpu()}}).ok());
  EXPECT_EQ(RunHfReference("check --dir " + out), 0);
  // And it loads back here to the same logits.
  auto again = LoadModel(out, TestDevice(), torch::kFloat32);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(torch::equal((*again)->forward(ids), logits));
}

// Every checkpoint carries checksums.sha256 (sha256sum's format, checked here by coreutils'
// sha256sum as the independent reference); a byte changed after writing is refused at load.
TEST(Checkpoint, ChecksumsCatchBytesChangedAfterWriting) {
  auto model = LoadModel(HfModels::Get().Dir("llama"), TestDevice(), torch::kFloat32);
  ASSERT_TRUE(model.ok()) << model.status();
  TempDir saved("srlm_checksums_");
  const std::string& out = saved.path();
  SaveModelOptions options;
  options.max_shard_bytes = 64 * 1024;  // shards + index
  ASSERT_TRUE(SaveModel(*model, out, options).ok());
  EXPECT_EQ(std::system(("cd " + out + " && sha256sum --quiet --strict -c checksums.sha256").c_str()), 0);
  std::ifstream manifest(out + "/checksums.sha256");
  std::vector<std::string> listed;
  for (std::string line; std::getline(manifest, line);) listed.push_back(line.substr(66));
  ASSERT_GE(listed.size(), 4u);  // config.json, two or more shards, the index
  EXPECT_EQ(listed.front(), "config.json");
  EXPECT_EQ(listed.back(), "model.safetensors.index.json");
  const std::string shard = out + "/" + listed[2];
  {  // flip the file's last byte: a weight, so the file stays well-formed
    std::fstream f(shard, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-1, std::ios::end);
    char c = 0;
    f.get(c);
    f.seekp(-1, std::ios::end);
    f.put(static_cast<char>(c ^ 0x10));
  }
  auto damaged = LoadModel(out, TestDevice(), torch::kFloat32);
  EXPECT_EQ(damaged.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(damaged.status().message().find(listed[2] + " changed after the checkpoint was written"),
            std::string::npos)
      << damaged.status();
  // An emptied manifest checks nothing: refused, not taken as "no manifest".
  { std::ofstream(out + "/checksums.sha256", std::ios::trunc); }
  auto emptied = LoadModel(out, TestDevice(), torch::kFloat32);
  EXPECT_EQ(emptied.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(emptied.status().message().find("lists no files"), std::string::npos) << emptied.status();
  // Without a manifest (a model from elsewhere) the same files load: nothing else noticed the byte.
  ASSERT_EQ(std::remove((out + "/checksums.sha256").c_str()), 0);
  EXPECT_TRUE(LoadModel(out, TestDevice(), torch::kFloat32).ok());
}

INSTANTIATE_TEST_SUITE_P(Kinds, HfParity,
                         ::testing::Values("llama", "llama_gqa_tied", "llama3_scaling", "qwen2", "qwen2_tied"));

TEST_P(HfParity, CachedGreedyGenerationMatchesTransformers) {
  const std::string dir = HfModels::Get().Dir(GetParam());
  auto ref = ReadReference(dir + "/reference.safetensors");
  auto model = LoadModel(dir, TestDevice(), torch::kFloat32);
  ASSERT_TRUE(model.ok()) << model.status();
  auto ids = ref["input_ids"].to(torch::kInt64);
  std::vector<int32_t> prompt;
  for (int t = 0; t < 7; ++t) prompt.push_back(static_cast<int32_t>(ids[0][t].item<int64_t>()));
  SamplingOptions greedy;
  greedy.temperature = 0;
  greedy.max_new_tokens = 32;
  // The reference prompt alone, and batched with a longer and a shorter prompt (left padding).
  std::vector<int32_t> longer, shorter = {5, 6};
  for (int t = 0; t < 13; ++t) longer.push_back(static_cast<int32_t>(ids[1][t].item<int64_t>()));
  auto alone = GenerateTokens(*model, {prompt}, greedy, {1}, /*eos_ids=*/{});
  auto batched = GenerateTokens(*model, {longer, prompt, shorter}, greedy, {1, 2, 3}, {});
  auto shorter_alone = GenerateTokens(*model, {shorter}, greedy, {3}, {});
  ASSERT_TRUE(alone.ok() && batched.ok() && shorter_alone.ok());
  std::vector<int32_t> expected;
  for (int t = 0; t < 32; ++t) expected.push_back(static_cast<int32_t>(ref["greedy_ids"][t].item<int64_t>()));
  EXPECT_EQ((*alone)[0].tokens, expected);
  EXPECT_EQ((*alone)[0].finish_reason, "length");
  EXPECT_EQ((*batched)[1].tokens, expected);
  EXPECT_EQ((*batched)[2].tokens, (*shorter_alone)[0].tokens);
}

// A tokenizer over the tiny vocabulary: id i is the letter 'a' + i % 26; ids 0..2 are special.
class LetterTokenizer : public Tokenizer {
 public:
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text) const override {
    std::vector<int32_t> ids;
    for (char c : text) ids.push_back(3 + (c - 'a'));
    return ids;
  }
  absl::StatusOr<std::string> Decode(const std::vector<int32_t>& ids) const override {
    std::string s;
    for (int32_t id : ids) {
      if (id >= 3) s.push_back(static_cast<char>('a' + (id - 3) % 26));
    }
    return s;
  }
  int32_t eos_id() const override { return 2; }
};

TEST(Generate, SeedsStopStringsAndEos) {
  auto model = LoadModel(HfModels::Get().Dir("llama"), TestDevice(), torch::kFloat32);
  ASSERT_TRUE(model.ok()) << model.status();
  LetterTokenizer tokenizer;
  SamplingOptions sampling;
  sampling.temperature = 1.0;
  sampling.top_p = 0.9;
  sampling.top_k = 40;
  sampling.max_new_tokens = 24;
  const std::vector<std::vector<int32_t>> prompts = {{1, 5, 9, 12}, {1, 7}, {1, 5, 9, 12}};
  auto first = Generate(*model, tokenizer, prompts, sampling, {11, 12, 13});
  auto second = Generate(*model, tokenizer, prompts, sampling, {11, 12, 13});
  ASSERT_TRUE(first.ok() && second.ok()) << first.status();
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ((*first)[i].tokens, (*second)[i].tokens) << "same seed and batch, sequence " << i;
    EXPECT_EQ((*first)[i].text, (*second)[i].text);
    if ((*first)[i].finish_reason == "length") {
      EXPECT_EQ((*first)[i].tokens.size(), 24u);
    }
  }
  // Same prompt, different seeds: different samples (24 tokens over ~90 choices).
  EXPECT_NE((*first)[0].tokens, (*first)[2].tokens);

  // A stop string taken from the middle of an unconstrained sample ends generation there.
  const std::string text = (*first)[0].text;
  ASSERT_GE(text.size(), 8u);
  SamplingOptions with_stop = sampling;
  with_stop.stop = {text.substr(4, 2)};
  auto stopped = Generate(*model, tokenizer, {prompts[0]}, with_stop, {11});
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ((*stopped)[0].finish_reason, "stop");
  EXPECT_EQ((*stopped)[0].text, text.substr(0, text.find(with_stop.stop[0])));
  // Its tokens are those of the text kept (one letter each here), not of the stop string after it:
  // they count the response's length.
  auto kept_text = tokenizer.Decode((*stopped)[0].tokens);
  ASSERT_TRUE(kept_text.ok());
  EXPECT_EQ(*kept_text, (*stopped)[0].text);
  ASSERT_LE((*stopped)[0].tokens.size(), (*first)[0].tokens.size());
  EXPECT_TRUE(std::equal((*stopped)[0].tokens.begin(), (*stopped)[0].tokens.end(), (*first)[0].tokens.begin()));

  // EOS: declare the 4th greedy token an EOS id; generation ends where it first appears.
  SamplingOptions greedy = sampling;
  greedy.temperature = 0;
  auto plain = GenerateTokens(*model, {prompts[0]}, greedy, {1}, {});
  ASSERT_TRUE(plain.ok());
  const int32_t eos_id = (*plain)[0].tokens[3];
  const auto first_eos = std::find((*plain)[0].tokens.begin(), (*plain)[0].tokens.end(), eos_id);
  auto ended = GenerateTokens(*model, {prompts[0]}, greedy, {1}, {eos_id});
  ASSERT_TRUE(ended.ok());
  EXPECT_EQ((*ended)[0].finish_reason, "eos");
  EXPECT_EQ((*ended)[0].tokens, std::vector<int32_t>((*plain)[0].tokens.begin(), first_eos));
}

// max_total_tokens bounds each sequence by the room its own prompt leaves, whatever else is in the
// batch (it used to be one bound for the batch, from its longest prompt); a prompt with no room is
// refused.
TEST(Generate, EachSequenceStopsAtItsOwnRoomInTheContext) {
  auto model = LoadModel(HfModels::Get().Dir("llama"), TestDevice(), torch::kFloat32);
  ASSERT_TRUE(model.ok()) << model.status();
  SamplingOptions greedy;
  greedy.temperature = 0;
  greedy.max_new_tokens = 8;
  const std::vector<std::vector<int32_t>> prompts = {{1, 5, 9, 12}, {1, 7}, {1, 5, 9, 12, 3, 4, 8, 10, 11}};
  auto unlimited = GenerateTokens(*model, prompts, greedy, {1, 2, 3}, {});
  SamplingOptions bounded = greedy;
  bounded.max_total_tokens = 12;
  auto limited = GenerateTokens(*model, prompts, bounded, {1, 2, 3}, {});
  ASSERT_TRUE(unlimited.ok() && limited.ok()) << limited.status();
  const std::vector<size_t> want_lengths = {8, 8, 3};  // min(8, 12 - prompt length)
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto& full = (*unlimited)[i].tokens;
    ASSERT_EQ(full.size(), 8u);
    EXPECT_EQ((*limited)[i].tokens, std::vector<int32_t>(full.begin(), full.begin() + want_lengths[i])) << i;
    EXPECT_EQ((*limited)[i].finish_reason, "length");
  }
  bounded.max_total_tokens = 9;  // the third prompt has 9 tokens: no room
  auto refused = GenerateTokens(*model, prompts, bounded, {1, 2, 3}, {});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("prompt 2 has 9 tokens"), std::string::npos) << refused.status();
}

// A tokenizer with fewer ids than the model's embedding (padded, as Qwen2's is): ids from 10 up
// cannot be decoded.
class TenTokenTokenizer : public LetterTokenizer {
 public:
  absl::StatusOr<std::string> Decode(const std::vector<int32_t>& ids) const override {
    for (int32_t id : ids) {
      if (id >= 10) return absl::InvalidArgumentError(absl::StrCat("token id ", id, " is outside the vocabulary"));
    }
    return LetterTokenizer::Decode(ids);
  }
  int64_t vocab_size() const override { return 10; }
};

// Sampling never picks an id the tokenizer cannot decode (a padding row of the embedding): that
// failed the sample, and, seeded, every retry of it.
TEST(Generate, SamplesOnlyIdsTheTokenizerHas) {
  auto model = LoadModel(HfModels::Get().Dir("llama"), TestDevice(), torch::kFloat32);
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_GT((*model)->config.vocab_size, 10);
  TenTokenTokenizer tokenizer;
  SamplingOptions sampling;
  sampling.temperature = 2.0;  // flat: without the bound, most draws land past id 9
  sampling.max_new_tokens = 32;
  const std::vector<std::vector<int32_t>> prompts = {{1, 5}, {1, 7}, {1, 9}, {1, 4}};
  auto out = Generate(*model, tokenizer, prompts, sampling, {1, 2, 3, 4});
  ASSERT_TRUE(out.ok()) << out.status();
  for (const auto& g : *out) {
    ASSERT_FALSE(g.tokens.empty());
    for (int32_t id : g.tokens) EXPECT_LT(id, 10);
  }
  // Unbounded (the token-level core with no limit) does draw past the tokenizer: the bound matters.
  auto unbounded = GenerateTokens(*model, prompts, sampling, {1, 2, 3, 4}, {});
  ASSERT_TRUE(unbounded.ok());
  bool past = false;
  for (const auto& g : *unbounded) {
    for (int32_t id : g.tokens) past = past || id >= 10;
  }
  EXPECT_TRUE(past);
}

// Rows with no finite probability (NaN logits) take the largest finite logit, not the last id.
TEST(TokenSampler, NonFiniteRowsTakeTheLargestFiniteLogit) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto logits = torch::tensor({0.5f, 2.0f, nan, 1.0f, -1.0f, nan, nan, nan, nan, nan, nan, nan}).view({2, 6});
  logits[1].fill_(nan);
  TokenSampler sampler({1.0, 1.0, 0}, {3, 4});
  std::vector<int64_t> ids = sampler.Sample(logits);
  EXPECT_EQ(ids[0], 1);  // NaN anywhere makes the softmax NaN: the largest finite logit wins
  EXPECT_EQ(ids[1], 0);  // nothing finite: the first id, never the last
}

TEST(SequenceLogprobs, IsDifferentiable) {
  const std::string dir = HfModels::Get().Dir("llama");
  auto model = LoadModel(dir, TestDevice(), torch::kFloat32);
  ASSERT_TRUE(model.ok()) << model.status();
  (*model)->train();
  const auto on = torch::TensorOptions().dtype(torch::kInt64).device(TestDevice());
  auto ids = torch::randint(3, 97, {2, 12}, on);
  auto attn = torch::ones({2, 12}, on);
  auto resp = torch::zeros({2, 12}, on);
  resp.narrow(1, 5, 7).fill_(1);
  auto sums = SequenceLogprobs(*model, ids, attn, resp);
  sums.sum().backward();
  auto grad = (*model)->model->layers[0]->self_attn->q_proj->weight.grad();
  ASSERT_TRUE(grad.defined());
  EXPECT_GT(grad.abs().sum().item<double>(), 0.0);
}

TEST(LlamaConfig, OnlySupportedModelTypesValidateAndEachOneLoadsBack) {
  // init-model validates before writing; a model_type the loader refuses must not get that far.
  LlamaConfig gpt2;
  gpt2.model_type = "gpt2";
  const absl::Status s = ValidateLlamaConfig(gpt2);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(std::string(s.message()).find("model_type 'gpt2' (expected llama, mistral, qwen2)"), std::string::npos) << s;
  for (const std::string& type : SupportedModelTypes()) {
    LlamaConfig c;
    c.model_type = type;
    EXPECT_TRUE(ValidateLlamaConfig(c).ok()) << type;
    auto back = ParseLlamaConfigJson(LlamaConfigToJson(c));
    ASSERT_TRUE(back.ok()) << type << ": " << back.status();
    EXPECT_EQ(back->model_type, type);
  }
}

// Sliding windows: Mistral's bounds the context srlm uses (it attends to every earlier token, the
// same computation only within the window), and is written back as read; a Mistral without one
// says so (null), or transformers' MistralConfig would give it 4096. Qwen2's counts only with
// use_sliding_window; Llama has none.
TEST(LlamaConfig, SlidingWindowsBoundTheContextAndAreWrittenBackAsRead) {
  auto parse = [](const std::string& json) {
    auto c = ParseLlamaConfigJson(json);
    EXPECT_TRUE(c.ok()) << json << ": " << c.status();
    return c.ok() ? *c : LlamaConfig();
  };
  auto written = [](const LlamaConfig& c) { return nlohmann::json::parse(LlamaConfigToJson(c)); };
  LlamaConfig mistral = parse(R"({"model_type": "mistral", "max_position_embeddings": 32768, "sliding_window": 4096})");
  EXPECT_EQ(mistral.context_length(), 4096);
  EXPECT_EQ(written(mistral)["sliding_window"], 4096);
  LlamaConfig unwindowed = parse(R"({"model_type": "mistral", "max_position_embeddings": 32768, "sliding_window": null})");
  EXPECT_EQ(unwindowed.context_length(), 32768);
  ASSERT_TRUE(written(unwindowed).contains("sliding_window"));
  EXPECT_TRUE(written(unwindowed)["sliding_window"].is_null());
  EXPECT_EQ(parse(R"({"model_type": "mistral", "max_position_embeddings": 2048, "sliding_window": 4096})")
                .context_length(),
            2048);

  LlamaConfig qwen = parse(R"({"model_type": "qwen2", "max_position_embeddings": 32768, "sliding_window": 4096,
                               "use_sliding_window": false, "max_window_layers": 21})");
  EXPECT_EQ(qwen.context_length(), 32768);
  EXPECT_EQ(written(qwen)["sliding_window"], 4096);
  EXPECT_EQ(written(qwen)["use_sliding_window"], false);
  EXPECT_EQ(written(qwen)["max_window_layers"], 21);
  qwen.use_sliding_window = true;
  EXPECT_EQ(qwen.context_length(), 4096);

  LlamaConfig llama = parse(R"({"model_type": "llama", "max_position_embeddings": 8192, "sliding_window": 4096})");
  EXPECT_EQ(llama.context_length(), 8192);
  EXPECT_FALSE(written(llama).contains("sliding_window"));
  EXPECT_FALSE(ParseLlamaConfigJson(R"({"model_type": "mistral", "sliding_window": -1})").ok());
}

// A config.json of a small Llama with `patch` (JSON object members) merged over it.
std::string ConfigWith(const std::string& patch) {
  LlamaConfig c;
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 4;
  nlohmann::json j = nlohmann::json::parse(LlamaConfigToJson(c));
  j.update(nlohmann::json::parse("{" + patch + "}"));
  return j.dump();
}

TEST(LlamaConfig, EveryFieldIsTypeCheckedAndTheErrorNamesTheKey) {
  // Each of these used to abort the process (a nlohmann type_error from j.value(key, string)), be
  // dropped ("eos_token_id": "1"), fall back to the default ("rms_norm_eps": "x") or be truncated
  // (64.9 read as 64).
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"("model_type": 5)", "key 'model_type': expected a string, got 5"},
      {R"("hidden_act": 1)", "key 'hidden_act': expected a string, got 1"},
      {R"("rope_scaling": {"rope_type": 3})", "key 'rope_scaling.rope_type': expected a string, got 3"},
      {R"("rope_parameters": {"type": ["llama3"]})", "key 'rope_parameters.type': expected a string"},
      {R"("rope_scaling": "llama3")", "key 'rope_scaling': expected an object"},
      {R"("rope_scaling": {"rope_type": "llama3", "factor": "8"})", "key 'rope_scaling.factor': expected a finite number"},
      {R"("rope_scaling": {"rope_type": "llama3", "original_max_position_embeddings": 8192.5})",
       "key 'rope_scaling.original_max_position_embeddings': expected an integer, got 8192.5"},
      {R"("eos_token_id": "1")", "key 'eos_token_id': expected an integer or a list of integers, got \"1\""},
      {R"("eos_token_id": [2, 3.5])", "key 'eos_token_id': expected an integer or a list of integers"},
      {R"("bos_token_id": true)", "key 'bos_token_id': expected an integer, got true"},
      {R"("rms_norm_eps": "x")", "key 'rms_norm_eps': expected a finite number, got \"x\""},
      {R"("rope_theta": [10000])", "key 'rope_theta': expected a finite number"},
      {R"("hidden_size": 64.9)", "key 'hidden_size': expected an integer, got 64.9"},
      {R"("vocab_size": 18446744073709551615)", "key 'vocab_size': expected an integer"},
      {R"("num_key_value_heads": "4")", "key 'num_key_value_heads': expected an integer"},
      {R"("tie_word_embeddings": 1)", "key 'tie_word_embeddings': expected true or false, got 1"},
      {R"("attention_bias": "false")", "key 'attention_bias': expected true or false"},
      {R"("torch_dtype": 32)", "key 'torch_dtype': expected a string, got 32"},
      {R"("attention_dropout": 1.5)", "attention_dropout 1.5 is not in [0, 1)"},
  };
  for (const auto& [patch, expected] : cases) {
    const auto config = ParseLlamaConfigJson(ConfigWith(patch));
    ASSERT_FALSE(config.ok()) << patch;
    EXPECT_NE(std::string(config.status().message()).find(expected), std::string::npos)
        << patch << ": " << config.status();
  }
  // Absent or null keeps the default; the right types load.
  auto ok = ParseLlamaConfigJson(ConfigWith(
      R"("head_dim": null, "bos_token_id": null, "eos_token_id": [5, 6], "rope_scaling": {"rope_type": "llama3", )"
      R"("factor": 8, "original_max_position_embeddings": 128}, "rms_norm_eps": 1e-5, "dtype": "bfloat16")"));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->head_dim, 0);
  EXPECT_EQ(ok->bos_token_id, -1);
  EXPECT_EQ(ok->eos_token_ids, (std::vector<int64_t>{5, 6}));
  EXPECT_EQ(ok->eos_token_id, 5);
  ASSERT_TRUE(ok->rope_scaling.has_value());
  EXPECT_EQ(ok->rope_scaling->original_max_position_embeddings, 128);
  EXPECT_EQ(ok->rms_norm_eps, 1e-5);
  EXPECT_EQ(ok->torch_dtype, "bfloat16");

  // LoadLlamaConfig names the file.
  TempDir dir("srlm_config_test_");
  std::ofstream(dir / "config.json") << ConfigWith(R"("hidden_size": 64.9)");
  const auto loaded = LoadLlamaConfig(dir / "config.json");
  EXPECT_NE(std::string(loaded.status().message()).find(dir / "config.json: key 'hidden_size'"), std::string::npos)
      << loaded.status();
}

TEST(LlamaConfig, SpecialTokenIdsMustBeInTheVocabulary) {
  // An eos_token_id or bos_token_id past vocab_size used to load; the id could never be sampled
  // (and was looked up in the embedding when a prompt started with it).
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"("eos_token_id": 64)", "eos_token_id 64 is outside the vocabulary [0, 64) of vocab_size"},
      {R"("eos_token_id": [2, 5000])", "eos_token_id 5000 is outside the vocabulary [0, 64) of vocab_size"},
      {R"("eos_token_id": -3)", "eos_token_id -3 is outside the vocabulary"},
      {R"("bos_token_id": 64)", "bos_token_id 64 is outside the vocabulary [0, 64) of vocab_size"},
      {R"("bos_token_id": -2)", "bos_token_id -2 is outside the vocabulary"},
      {R"("vocab_size": 2147483648)", "vocab_size 2147483648 is over 2^31 - 1"},
  };
  for (const auto& [patch, expected] : cases) {
    const auto config = ParseLlamaConfigJson(ConfigWith(patch));
    ASSERT_FALSE(config.ok()) << patch;
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << patch;
    EXPECT_NE(std::string(config.status().message()).find(expected), std::string::npos)
        << patch << ": " << config.status();
  }
  const auto ok = ParseLlamaConfigJson(ConfigWith(R"("bos_token_id": 0, "eos_token_id": [63, 1])"));
  EXPECT_TRUE(ok.ok()) << ok.status();
  const auto none = ParseLlamaConfigJson(ConfigWith(R"("bos_token_id": -1, "eos_token_id": null)"));
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->bos_token_id, -1);
}

TEST(LlamaConfig, TextThatIsNotJsonSaysWhereAndWhy) {
  // A truncated config.json used to say "config.json is not a JSON object".
  TempDir dir("srlm_config_test_");
  const std::string whole = ConfigWith(R"("hidden_size": 32)");
  WriteFileText(dir / "config.json", "{\n  \"model_type\": \"llama\",\n  \"hidden_size\": ");
  const auto truncated = LoadLlamaConfig(dir / "config.json");
  ASSERT_FALSE(truncated.ok());
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(truncated.status().message())
                .find(dir / "config.json: invalid JSON at line 3, column 18: syntax error while parsing value - "
                            "unexpected end of input"),
            std::string::npos)
      << truncated.status();
  WriteFileText(dir / "config.json", "{\"model_type\": \"ll\xff\"}");
  const auto bad_utf8 = LoadLlamaConfig(dir / "config.json");
  EXPECT_NE(std::string(bad_utf8.status().message()).find("invalid JSON at line 1, column 19: "), std::string::npos)
      << bad_utf8.status();
  EXPECT_NE(std::string(bad_utf8.status().message()).find("ill-formed UTF-8 byte"), std::string::npos) << bad_utf8.status();
  WriteFileText(dir / "config.json", "[" + whole + "]");
  const auto array = LoadLlamaConfig(dir / "config.json");
  EXPECT_NE(std::string(array.status().message()).find(dir / "config.json: not a JSON object: it holds an array"),
            std::string::npos)
      << array.status();
}

TEST(LlamaConfig, NonFiniteRopeThetaDoesNotValidate) {
  LlamaConfig c;
  for (double theta : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(), -1.0}) {
    c.rope_theta = theta;
    EXPECT_FALSE(ValidateLlamaConfig(c).ok()) << theta;
  }
}


TEST(LoadTokenizerIfPresent, OnlyAMissingTokenizerIsNone) {
  TempDir dir("srlm_tokenizer_test_");
  auto none = LoadTokenizerIfPresent(dir.path());
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(*none, nullptr);
  WriteFileText(dir / "tokenizer.json", "{broken");
  auto broken = LoadTokenizerIfPresent(dir.path());
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(std::string(broken.status().message()).find("tokenizer.json"), std::string::npos) << broken.status();
}

}  // namespace
}  // namespace srlm
