// `srlm-worker init-model`: a random Llama-family model of a given size, seeded, written in the
// Hugging Face layout (for tests and demos); --tokenizer-from copies a tokenizer beside it. Flags
// are range-checked while the command line is parsed; --out must not exist or be empty, and is
// written whole or not at all (worker/train/atomic_dir.h). Sizes whose parameters do not fit in
// memory are ResourceExhausted naming the bytes they need, before anything is written.
#include <dirent.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include "absl/strings/match.h"

#include "common/logging.h"
#include "common/status_macros.h"
#include "common/tokenizer/tokenizer.h"
#include "worker/model/checkpoint_io.h"
#include "worker/model/llama_config.h"
#include "worker/model/model_options.h"
#include "worker/model/out_of_memory.h"
#include "worker/train/atomic_dir.h"

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

// --out must not hold anything yet: init-model makes a new model, it never replaces one.
absl::Status CheckOutIsNew(const std::string& out_dir) {
  struct stat st;
  if (::stat(out_dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return absl::ErrnoToStatus(errno, absl::StrCat("--out ", out_dir));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("--out ", out_dir, " exists and is not a directory"));
  }
  DIR* dir = ::opendir(out_dir.c_str());
  if (dir == nullptr) return absl::ErrnoToStatus(errno, absl::StrCat("--out ", out_dir));
  bool empty = true;
  while (const dirent* e = ::readdir(dir)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) empty = false;
  }
  ::closedir(dir);
  if (!empty) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--out ", out_dir, " exists and is not empty: init-model writes a new model and replaces nothing"));
  }
  return absl::OkStatus();
}

absl::Status RunInitModel(const InitModelFlags& flags) {
  SRLM_RETURN_IF_ERROR(CheckOutIsNew(flags.out_dir));
  LlamaConfig config = flags.config;
  config.vocab_size = flags.vocab_size > 0 ? flags.vocab_size : 4096;
  if (!flags.tokenizer_from.empty()) {
    SRLM_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, LoadTokenizer(flags.tokenizer_from));
    if (flags.vocab_size == 0) config.vocab_size = tokenizer->vocab_size();
    if (config.vocab_size < tokenizer->vocab_size()) {
      return absl::InvalidArgumentError(absl::StrCat("--vocab-size ", config.vocab_size, " is below the tokenizer's ",
                                                     tokenizer->vocab_size()));
    }
    config.bos_token_id = tokenizer->bos_id();
    config.eos_token_id = tokenizer->eos_id();
    config.eos_token_ids.clear();
    if (config.eos_token_id >= 0) config.eos_token_ids.push_back(config.eos_token_id);
  }
  if (absl::Status valid = ValidateLlamaConfig(config); !valid.ok()) {
    if (!flags.tokenizer_from.empty() || !absl::StrContains(valid.message(), "_token_id")) return valid;
    return absl::Status(valid.code(), absl::StrCat(valid.message(), " (without --tokenizer-from the model gets bos_token_id ",
                                                   config.bos_token_id, " and eos_token_id ", config.eos_token_id, ")"));
  }
  SRLM_ASSIGN_OR_RETURN(torch::ScalarType dtype, ParseDtype(flags.dtype, torch::kCPU));
  SRLM_RETURN_IF_ERROR(CheckDirectoryWritable(flags.out_dir));
  // Written into a temporary sibling that is renamed to --out when whole; WriteDirectoryAtomically
  // removes the temporary when SaveModel fails, so nothing half-written is left.
  int64_t params = 0;
  // Too large for this machine, or an allocation that fails: ResourceExhausted with the bytes.
  absl::StatusOr<LlamaModel> built = NewLlamaModel(config, torch::kFloat32);
  if (!built.ok()) {
    return internal::Annotate(built.status(),
                              "the sizes given (--vocab-size, --hidden-size, --intermediate-size, --layers)");
  }
  try {
    LlamaModel model = *std::move(built);
    InitializeWeights(model, flags.seed, flags.init_std);
    model->to(dtype);
    for (const auto& p : model->parameters()) params += p.numel();
    SaveModelOptions options;
    options.tokenizer_source_dir = flags.tokenizer_from;
    SRLM_RETURN_IF_ERROR(WriteDirectoryAtomically(
        flags.out_dir, [&](const std::string& tmp_dir) { return SaveModel(model, tmp_dir, options); }));
  } catch (const c10::Error& e) {  // before anything is written
    if (IsOutOfMemory(e)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "making the model: out of memory while initialising or writing its weights (its parameters take ",
          LlamaParameterBytes(config, 4).value_or(-1), " bytes as float32)"));
    }
    return absl::InternalError(absl::StrCat("making the model: ", e.what_without_backtrace()));
  }
  SRLM_LOG(INFO) << "init-model: wrote " << params << " parameters to " << flags.out_dir;
  return absl::OkStatus();
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
  cmd->add_option("--out", flags->out_dir, "Output model directory")->required()->check(NonEmptyPath());
  cmd->add_option("--tokenizer-from", flags->tokenizer_from, "Copy the tokenizer files of this model directory");
  cmd->add_option("--model-type", flags->config.model_type, "Model family (config.json model_type)")
      ->check(CLI::IsMember(SupportedModelTypes()))
      ->capture_default_str();
  // Token ids are int32 everywhere.
  cmd->add_option("--vocab-size", flags->vocab_size, "Vocabulary size (default: the tokenizer's, else 4096)")
      ->check(Integer(1, std::numeric_limits<int32_t>::max()));
  cmd->add_option("--hidden-size", flags->config.hidden_size)->check(Integer(1))->capture_default_str();
  cmd->add_option("--intermediate-size", flags->config.intermediate_size)
      ->check(Integer(1))
      ->capture_default_str();
  cmd->add_option("--layers", flags->config.num_hidden_layers)->check(Integer(1))->capture_default_str();
  cmd->add_option("--heads", flags->config.num_attention_heads)->check(Integer(1))->capture_default_str();
  cmd->add_option("--kv-heads", flags->config.num_key_value_heads)->check(Integer(1))->capture_default_str();
  cmd->add_option("--max-position-embeddings", flags->config.max_position_embeddings)
      ->check(Integer(1))
      ->capture_default_str();
  cmd->add_option("--rope-theta", flags->config.rope_theta)
      ->check(FinitePositive())
      ->capture_default_str();
  cmd->add_flag("--tie-embeddings", flags->config.tie_word_embeddings, "Share the embedding and output matrices");
  cmd->add_flag("--attention-bias", flags->config.attention_bias, "Bias on q/k/v projections");
  cmd->add_option("--seed", flags->seed, "Seed of the random weights")->check(Integer(0))->capture_default_str();
  cmd->add_option("--init-std", flags->init_std, "Standard deviation of the random weights")
      ->check(FiniteNonNegative())
      ->capture_default_str();
  cmd->add_option("--dtype", flags->dtype, "float32 | bfloat16")->capture_default_str();
  cmd->callback([flags]() {
    const absl::Status s = RunInitModel(*flags);
    if (!s.ok()) SRLM_LOG(ERROR) << "init-model: " << s;
    std::exit(s.ok() ? 0 : 1);
  });
}

}  // namespace srlm
