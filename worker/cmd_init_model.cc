// `srlm-worker init-model`: a random Llama-family model of a given size, seeded, written in the
// Hugging Face layout (for tests and demos); --tokenizer-from copies a tokenizer beside it.
#include <CLI/CLI.hpp>

#include "common/logging.h"
#include "common/tokenizer/tokenizer.h"
#include "worker/model/checkpoint_io.h"
#include "worker/model/llama_config.h"
#include "worker/model/model_options.h"

namespace srlm {
namespace {

struct InitModelFlags {
  std::string out_dir;
  std::string tokenizer_from;
  std::string dtype = "float32";
  LlamaConfig config;
  uint64_t seed = 0;
  double init_std = 0.02;
  int64_t vocab_size = 0;  // 0: the tokenizer's, else 4096
};

int RunInitModel(const InitModelFlags& flags) {
  LlamaConfig config = flags.config;
  config.vocab_size = flags.vocab_size > 0 ? flags.vocab_size : 4096;
  if (!flags.tokenizer_from.empty()) {
    auto tokenizer = LoadTokenizer(flags.tokenizer_from);
    if (!tokenizer.ok()) {
      SRLM_LOG(ERROR) << "init-model: " << tokenizer.status();
      return 1;
    }
    if (flags.vocab_size == 0) config.vocab_size = (*tokenizer)->vocab_size();
    if (config.vocab_size < (*tokenizer)->vocab_size()) {
      SRLM_LOG(ERROR) << "init-model: --vocab-size " << config.vocab_size << " is below the tokenizer's "
                      << (*tokenizer)->vocab_size();
      return 1;
    }
    config.bos_token_id = (*tokenizer)->bos_id();
    config.eos_token_id = (*tokenizer)->eos_id();
    config.eos_token_ids.clear();
    if (config.eos_token_id >= 0) config.eos_token_ids.push_back(config.eos_token_id);
  }
  if (auto s = ValidateLlamaConfig(config); !s.ok()) {
    SRLM_LOG(ERROR) << "init-model: " << s;
    return 1;
  }
  auto dtype = ParseDtype(flags.dtype, torch::kCPU);
  if (!dtype.ok()) {
    SRLM_LOG(ERROR) << "init-model: " << dtype.status();
    return 1;
  }
  LlamaModel model(config);
  InitializeWeights(model, flags.seed, flags.init_std);
  model->to(*dtype);
  SaveModelOptions options;
  options.tokenizer_source_dir = flags.tokenizer_from;
  if (auto s = SaveModel(model, flags.out_dir, options); !s.ok()) {
    SRLM_LOG(ERROR) << "init-model: " << s;
    return 1;
  }
  int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();
  SRLM_LOG(INFO) << "init-model: wrote " << params << " parameters to " << flags.out_dir;
  return 0;
}

}  // namespace

void RegisterInitModelCommand(CLI::App& app) {
  auto flags = std::make_shared<InitModelFlags>();
  flags->config.hidden_size = 256;
  flags->config.intermediate_size = 688;
  flags->config.num_hidden_layers = 4;
  flags->config.num_attention_heads = 4;
  flags->config.num_key_value_heads = 4;
  flags->config.max_position_embeddings = 2048;
  flags->config.bos_token_id = 1;
  flags->config.eos_token_id = 2;
  flags->config.eos_token_ids = {2};
  auto* cmd = app.add_subcommand("init-model", "Write a random model of a given size in the Hugging Face layout");
  cmd->add_option("--out", flags->out_dir, "Output model directory")->required();
  cmd->add_option("--tokenizer-from", flags->tokenizer_from, "Copy the tokenizer files of this model directory");
  cmd->add_option("--model-type", flags->config.model_type, "Model family (config.json model_type)")
      ->check(CLI::IsMember(SupportedModelTypes()))
      ->capture_default_str();
  cmd->add_option("--vocab-size", flags->vocab_size, "Vocabulary size (default: the tokenizer's, else 4096)");
  cmd->add_option("--hidden-size", flags->config.hidden_size)->capture_default_str();
  cmd->add_option("--intermediate-size", flags->config.intermediate_size)->capture_default_str();
  cmd->add_option("--layers", flags->config.num_hidden_layers)->capture_default_str();
  cmd->add_option("--heads", flags->config.num_attention_heads)->capture_default_str();
  cmd->add_option("--kv-heads", flags->config.num_key_value_heads)->capture_default_str();
  cmd->add_option("--max-position-embeddings", flags->config.max_position_embeddings)->capture_default_str();
  cmd->add_option("--rope-theta", flags->config.rope_theta)->capture_default_str();
  cmd->add_flag("--tie-embeddings", flags->config.tie_word_embeddings, "Share the embedding and output matrices");
  cmd->add_flag("--attention-bias", flags->config.attention_bias, "Bias on q/k/v projections");
  cmd->add_option("--seed", flags->seed, "Seed of the random weights")->capture_default_str();
  cmd->add_option("--init-std", flags->init_std, "Standard deviation of the random weights")->capture_default_str();
  cmd->add_option("--dtype", flags->dtype, "float32 | bfloat16")->capture_default_str();
  cmd->callback([flags]() { std::exit(RunInitModel(*flags)); });
}

}  // namespace srlm
