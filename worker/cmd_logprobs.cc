// `srlm-worker logprobs --model DIR --input IN.jsonl --output OUT.jsonl`: for each line (`prompt`
// and `response` as text, or `prompt_ids` and `response_ids`) writes the line back with `logprob`,
// the sum of the response tokens' log-probabilities given the prompt, and `num_tokens`.
// Text is tokenized as the trainer does: the prompt through the chat template (with BOS), the
// response followed by the template's end-of-turn token (or EOS) unless --no-end-token. An empty
// prompt or response is refused, and so is a line whose prompt + response is longer than the
// model's context (LlamaConfig::context_length(): max_position_embeddings, or a smaller sliding
// window), as sft and dpo refuse it. Input and --output are checked before the model is loaded;
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
#include "worker/model/logprobs.h"
#include "worker/model/model_options.h"
#include "worker/train/examples.h"

namespace srlm {
namespace {

struct LogprobsFlags {
  std::string model_dir, input, output;
  std::string device = "auto", dtype = "auto";
  std::string chat_template = "plain";
  bool no_end_token = false;
  int64_t batch_size = 8;
};

struct Sequence {
  std::vector<int32_t> ids;
  int64_t prompt_len = 0;
};

absl::StatusOr<Sequence> TokenizeLine(const nlohmann::json& line, const Tokenizer* tokenizer, const LogprobsFlags& flags,
                                      int64_t vocab_size) {
  Sequence seq;
  std::vector<int32_t> response;
  if (line.contains("prompt_ids")) {
    SRLM_ASSIGN_OR_RETURN(seq.ids, JsonIds(line["prompt_ids"], vocab_size, "prompt_ids"));
    SRLM_ASSIGN_OR_RETURN(response, JsonIds(line.value("response_ids", nlohmann::json()), vocab_size, "response_ids"));
  } else {
    if (!line.contains("prompt") || !line["prompt"].is_string() || !line.contains("response") ||
        !line["response"].is_string()) {
      return absl::InvalidArgumentError("needs prompt and response strings, or prompt_ids and response_ids");
    }
    if (tokenizer == nullptr) {
      return absl::FailedPreconditionError(
          "text input needs a tokenizer: the model directory has no tokenizer.json or tokenizer.model");
    }
    SRLM_ASSIGN_OR_RETURN(seq.ids, EncodeChatPrompt(*tokenizer, flags.chat_template, line["prompt"].get<std::string>()));
    // Literal, as the trainer encodes responses (TokenizerTextEncoder::EncodeResponse).
    SRLM_ASSIGN_OR_RETURN(response, tokenizer->EncodeLiteral(line["response"].get<std::string>()));
    if (!flags.no_end_token) {
      std::optional<int32_t> end;
      const std::string turn_end = ChatTurnEnd(flags.chat_template);
      if (!turn_end.empty()) end = tokenizer->TokenToId(turn_end);
      if (!end && tokenizer->eos_id() >= 0) end = tokenizer->eos_id();
      if (end) response.push_back(*end);
    }
  }
  if (seq.ids.empty()) return absl::InvalidArgumentError("empty prompt: nothing to condition the first response token on");
  if (response.empty()) return absl::InvalidArgumentError("empty response: no tokens to score");
  seq.prompt_len = static_cast<int64_t>(seq.ids.size());
  seq.ids.insert(seq.ids.end(), response.begin(), response.end());
  return seq;
}

absl::Status RunLogprobs(const LogprobsFlags& flags) {
  // The files first: bad input or an unwritable --output fails before the model is loaded.
  SRLM_RETURN_IF_ERROR(CheckFileWritable(flags.output));
  SRLM_ASSIGN_OR_RETURN(std::vector<nlohmann::json> lines, ReadJsonl(flags.input));
  SRLM_ASSIGN_OR_RETURN(torch::Device device, ParseDevice(flags.device));
  SRLM_ASSIGN_OR_RETURN(torch::ScalarType dtype, ParseDtype(flags.dtype, device));
  SRLM_ASSIGN_OR_RETURN(LlamaModel model, LoadModel(flags.model_dir, device, dtype));
  // Only id input works without a tokenizer; one that is there but broken is an error.
  SRLM_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, LoadTokenizerIfPresent(flags.model_dir));
  if (tokenizer != nullptr) {
    SRLM_RETURN_IF_ERROR_CTX(CheckTokenizerFitsChatTemplate(*tokenizer, flags.chat_template), flags.model_dir);
  }
  // No line longer than the model's context, as sft and dpo (worker/train/examples.h): past
  // max_position_embeddings the model was never trained, and past a sliding window srlm would not
  // compute what the model does (it attends to every earlier token).
  const int64_t context = model->config.context_length();
  std::vector<Sequence> sequences;
  for (size_t i = 0; i < lines.size(); ++i) {
    auto seq = TokenizeLine(lines[i], tokenizer.get(), flags, model->config.vocab_size);
    if (seq.ok() && static_cast<int64_t>(seq->ids.size()) > context) {
      seq = SequenceTooLongError("prompt + response", static_cast<int64_t>(seq->ids.size()), context,
                                 model->config.context_length_key());
    }
    if (!seq.ok()) return internal::Annotate(seq.status(), absl::StrCat(flags.input, ":", i + 1));
    sequences.push_back(std::move(*seq));
  }
  try {
    c10::InferenceMode inference;
    for (size_t start = 0; start < sequences.size(); start += flags.batch_size) {
      const size_t end = std::min(sequences.size(), start + static_cast<size_t>(flags.batch_size));
      int64_t T = 0;
      for (size_t i = start; i < end; ++i) T = std::max<int64_t>(T, sequences[i].ids.size());
      const int64_t B = static_cast<int64_t>(end - start);
      auto ids = torch::zeros({B, T}, torch::kInt64);
      auto attn = torch::zeros({B, T}, torch::kInt64);
      auto resp = torch::zeros({B, T}, torch::kInt64);
      for (int64_t b = 0; b < B; ++b) {
        const auto& s = sequences[start + b];
        const int64_t n = static_cast<int64_t>(s.ids.size());
        ids[b].narrow(0, 0, n).copy_(torch::tensor(std::vector<int64_t>(s.ids.begin(), s.ids.end())));
        attn[b].narrow(0, 0, n).fill_(1);
        resp[b].narrow(0, s.prompt_len, n - s.prompt_len).fill_(1);
      }
      auto sums = SequenceLogprobs(model, ids.to(device), attn.to(device), resp.to(device)).to(torch::kCPU).to(torch::kFloat64);
      for (int64_t b = 0; b < B; ++b) {
        const auto& s = sequences[start + b];
        lines[start + b]["logprob"] = sums[b].item<double>();
        lines[start + b]["num_tokens"] = static_cast<int64_t>(s.ids.size()) - s.prompt_len;
      }
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("logprobs: ", e.what_without_backtrace()));
  }
  SRLM_RETURN_IF_ERROR(WriteJsonl(flags.output, lines));
  SRLM_LOG(INFO) << "logprobs: wrote " << lines.size() << " lines to " << flags.output;
  return absl::OkStatus();
}

}  // namespace

void RegisterLogprobsCommand(CLI::App& app) {
  auto flags = std::make_shared<LogprobsFlags>();
  auto* cmd = app.add_subcommand("logprobs", "Sum of response-token log-probabilities given the prompt, per JSONL line");
  cmd->add_option("--model", flags->model_dir, "Model directory (Hugging Face layout)")->required();
  cmd->add_option("--input", flags->input, "Input JSONL")->required();
  cmd->add_option("--output", flags->output, "Output JSONL")->required()->check(NonEmptyPath());
  cmd->add_option("--device", flags->device, "auto | cpu | cuda[:N]")->capture_default_str();
  cmd->add_option("--dtype", flags->dtype, "auto | float32 | bfloat16")->capture_default_str();
  cmd->add_option("--chat-template", flags->chat_template, "Chat format of text input")
      ->check(CLI::IsMember(ChatTemplateNames()))
      ->capture_default_str();
  cmd->add_flag("--no-end-token", flags->no_end_token, "Do not append the end-of-turn/EOS token to text responses");
  cmd->add_option("--batch-size", flags->batch_size)->check(Integer(1))->capture_default_str();
  cmd->callback([flags]() {
    absl::Status s = RunLogprobs(*flags);
    if (!s.ok()) SRLM_LOG(ERROR) << s;
    std::exit(s.ok() ? 0 : 1);
  });
}

}  // namespace srlm
