// `srlm-worker generate --model DIR --input IN.jsonl --output OUT.jsonl`: for each line (`prompt`
// text, formatted with --chat-template, or `prompt_ids`) writes the line back with `response`
// (text), `response_ids` and `finish_reason` (eos | stop | length). Line i is sampled with seed
// --seed + i unless it carries its own `seed` (an integer >= 0). No sequence runs past the model's
// context (LlamaConfig::context_length()): each ends there ("length"), and a prompt that fills it is
// refused naming its line. Flags, input and --output are checked before the model is loaded;
// --output is replaced only once every line is done.
#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include "common/atomic_file.h"
#include "common/jsonl.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/tokenizer/chat_template.h"
#include "common/tokenizer/tokenizer.h"
#include "worker/model/checkpoint_io.h"
#include "worker/model/batched_generation.h"
#include "worker/model/model_options.h"

namespace srlm {
namespace {

struct GenerateFlags {
  std::string model_dir, input, output;
  std::string device = "auto", dtype = "auto";
  std::string chat_template = "plain";
  SamplingOptions sampling;
  uint64_t seed = 0;
  int64_t batch_size = 16;
};

// A line's own `seed` when it has one (an integer >= 0), else --seed + i.
absl::StatusOr<uint64_t> LineSeed(const nlohmann::json& line, uint64_t flag_seed, size_t i) {
  if (!line.contains("seed")) return flag_seed + i;
  if (!line["seed"].is_number_unsigned()) {
    return absl::InvalidArgumentError(absl::StrCat("'seed' must be an integer >= 0, got ", line["seed"].dump()));
  }
  return line["seed"].get<uint64_t>();
}

absl::Status RunGenerate(GenerateFlags flags) {
  // The files first: bad input or an unwritable --output fails before the model is loaded.
  SRLM_RETURN_IF_ERROR(CheckFileWritable(flags.output));
  SRLM_ASSIGN_OR_RETURN(std::vector<nlohmann::json> lines, ReadJsonl(flags.input));
  SRLM_ASSIGN_OR_RETURN(torch::Device device, ParseDevice(flags.device));
  SRLM_ASSIGN_OR_RETURN(torch::ScalarType dtype, ParseDtype(flags.dtype, device));
  SRLM_ASSIGN_OR_RETURN(LlamaModel model, LoadModel(flags.model_dir, device, dtype));
  SRLM_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, LoadTokenizer(flags.model_dir));
  SRLM_RETURN_IF_ERROR_CTX(CheckTokenizerFitsChatTemplate(*tokenizer, flags.chat_template), flags.model_dir);
  for (int32_t id : ChatStopTokenIds(*tokenizer, flags.chat_template)) flags.sampling.extra_eos_ids.push_back(id);
  // Nothing runs past the model's context (max_position_embeddings, or a smaller sliding window, past
  // which srlm would not compute what the model does): sequences end there ("length"), and a prompt
  // that leaves no room for one new token is refused with its line, as the loop leaves such prompts
  // out (docs/MODEL.md says why).
  const int64_t context = model->config.context_length();
  flags.sampling.max_total_tokens = context;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<uint64_t> seeds;
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto& line = lines[i];
    const std::string where = absl::StrCat(flags.input, ":", i + 1);
    absl::StatusOr<std::vector<int32_t>> ids;
    if (line.contains("prompt_ids")) {
      ids = JsonIds(line["prompt_ids"], model->config.vocab_size, "prompt_ids");
    } else if (line.contains("prompt") && line["prompt"].is_string()) {
      ids = EncodeChatPrompt(*tokenizer, flags.chat_template, line["prompt"].get<std::string>());
    } else {
      ids = absl::InvalidArgumentError("needs a prompt string or prompt_ids");
    }
    if (ids.ok() && ids->empty()) ids = absl::InvalidArgumentError("empty prompt (give at least a BOS token)");
    if (ids.ok() && static_cast<int64_t>(ids->size()) >= context) {
      ids = absl::InvalidArgumentError(absl::StrCat("prompt is ", ids->size(), " tokens, no room for a response under the limit of ",
                                                    context, " (the model's ", model->config.context_length_key(), ")"));
    }
    if (!ids.ok()) return internal::Annotate(ids.status(), where);
    prompts.push_back(std::move(*ids));
    absl::StatusOr<uint64_t> seed = LineSeed(line, flags.seed, i);
    if (!seed.ok()) return internal::Annotate(seed.status(), where);
    seeds.push_back(*seed);
  }
  BatchedGenerator generator(flags.batch_size);
  SRLM_ASSIGN_OR_RETURN(std::vector<Generation> out,
                        generator.Generate(model, *tokenizer, prompts, flags.sampling, seeds));
  for (size_t i = 0; i < out.size(); ++i) {
    auto& line = lines[i];
    line["response"] = out[i].text;
    line["response_ids"] = out[i].tokens;
    line["finish_reason"] = out[i].finish_reason;
  }
  SRLM_RETURN_IF_ERROR(WriteJsonl(flags.output, lines));
  SRLM_LOG(INFO) << "generate: wrote " << lines.size() << " lines to " << flags.output;
  return absl::OkStatus();
}

}  // namespace

void RegisterGenerateCommand(CLI::App& app) {
  auto flags = std::make_shared<GenerateFlags>();
  auto* cmd = app.add_subcommand("generate", "Sample responses for JSONL prompts with a KV-cache batch decoder");
  cmd->add_option("--model", flags->model_dir, "Model directory (Hugging Face layout, with a tokenizer)")->required();
  cmd->add_option("--input", flags->input, "Input JSONL")->required();
  cmd->add_option("--output", flags->output, "Output JSONL")->required()->check(NonEmptyPath());
  cmd->add_option("--device", flags->device, "auto | cpu | cuda[:N]")->capture_default_str();
  cmd->add_option("--dtype", flags->dtype, "auto | float32 | bfloat16")->capture_default_str();
  cmd->add_option("--chat-template", flags->chat_template, "Chat format of text prompts")
      ->check(CLI::IsMember(ChatTemplateNames()))
      ->capture_default_str();
  // The same ranges as the YAML's *.sampling keys (common/run_config.cc ValidateSampling).
  cmd->add_option("--temperature", flags->sampling.temperature, "0 = greedy")
      ->check(FiniteNonNegative())
      ->capture_default_str();
  cmd->add_option("--top-p", flags->sampling.top_p)
      ->check(FiniteNumber(0, 1, /*exclude_min=*/true))
      ->capture_default_str();
  cmd->add_option("--top-k", flags->sampling.top_k, "0 = off")->check(Integer(0))->capture_default_str();
  cmd->add_option("--max-new-tokens", flags->sampling.max_new_tokens)
      ->check(Integer(1))
      ->capture_default_str();
  cmd->add_option("--stop", flags->sampling.stop, "Stop string (repeatable)");
  cmd->add_option("--seed", flags->seed, "Seed of line 0; line i uses seed + i")
      ->check(Integer(0))
      ->capture_default_str();
  cmd->add_option("--batch-size", flags->batch_size, "sequences decoded together (halved for good when a batch runs out of memory)")->check(Integer(1))->capture_default_str();
  cmd->callback([flags]() {
    absl::Status s = RunGenerate(*flags);
    if (!s.ok()) SRLM_LOG(ERROR) << s;
    std::exit(s.ok() ? 0 : 1);
  });
}

}  // namespace srlm
