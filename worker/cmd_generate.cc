// `srlm-worker generate --model DIR --input IN.jsonl --output OUT.jsonl`: for each line (`prompt`
// text, formatted with --chat-template, or `prompt_ids`) writes the line back with `response`
// (text), `response_ids` and `finish_reason` (eos | stop | length). Line i is sampled with seed
// --seed + i unless it carries its own `seed`.
#include <CLI/CLI.hpp>

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

absl::Status RunGenerate(GenerateFlags flags) {
  SRLM_ASSIGN_OR_RETURN(torch::Device device, ParseDevice(flags.device));
  SRLM_ASSIGN_OR_RETURN(torch::ScalarType dtype, ParseDtype(flags.dtype, device));
  SRLM_ASSIGN_OR_RETURN(LlamaModel model, LoadModel(flags.model_dir, device, dtype));
  SRLM_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, LoadTokenizer(flags.model_dir));
  for (int32_t id : ChatStopTokenIds(*tokenizer, flags.chat_template)) flags.sampling.extra_eos_ids.push_back(id);
  SRLM_ASSIGN_OR_RETURN(std::vector<nlohmann::json> lines, ReadJsonl(flags.input));
  std::vector<std::vector<int32_t>> prompts;
  std::vector<uint64_t> seeds;
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto& line = lines[i];
    absl::StatusOr<std::vector<int32_t>> ids;
    if (line.contains("prompt_ids")) {
      ids = JsonIds(line["prompt_ids"], model->config.vocab_size, "prompt_ids");
    } else if (line.contains("prompt") && line["prompt"].is_string()) {
      ids = EncodeChatPrompt(*tokenizer, flags.chat_template, line["prompt"].get<std::string>());
    } else {
      ids = absl::InvalidArgumentError("needs a prompt string or prompt_ids");
    }
    if (!ids.ok()) return internal::Annotate(ids.status(), absl::StrCat(flags.input, " line ", i + 1));
    prompts.push_back(std::move(*ids));
    seeds.push_back(line.contains("seed") && line["seed"].is_number_unsigned() ? line["seed"].get<uint64_t>()
                                                                                : flags.seed + i);
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
  cmd->add_option("--output", flags->output, "Output JSONL")->required();
  cmd->add_option("--device", flags->device, "auto | cpu | cuda[:N]")->capture_default_str();
  cmd->add_option("--dtype", flags->dtype, "auto | float32 | bfloat16")->capture_default_str();
  cmd->add_option("--chat-template", flags->chat_template, "Chat format of text prompts")
      ->check(CLI::IsMember(ChatTemplateNames()))
      ->capture_default_str();
  cmd->add_option("--temperature", flags->sampling.temperature, "0 = greedy")->capture_default_str();
  cmd->add_option("--top-p", flags->sampling.top_p)->capture_default_str();
  cmd->add_option("--top-k", flags->sampling.top_k, "0 = off")->capture_default_str();
  cmd->add_option("--max-new-tokens", flags->sampling.max_new_tokens)->capture_default_str();
  cmd->add_option("--stop", flags->sampling.stop, "Stop string (repeatable)");
  cmd->add_option("--seed", flags->seed, "Seed of line 0; line i uses seed + i")->capture_default_str();
  cmd->add_option("--batch-size", flags->batch_size, "sequences decoded together (halved for good when a batch runs out of memory)")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->callback([flags]() {
    absl::Status s = RunGenerate(*flags);
    if (!s.ok()) SRLM_LOG(ERROR) << s;
    std::exit(s.ok() ? 0 : 1);
  });
}

}  // namespace srlm
