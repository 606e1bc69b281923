// Implementation of worker/run/torch_loop_model.h.
#include "worker/run/torch_loop_model.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/tokenizer/chat_template.h"
#include "worker/model/batched_generation.h"
#include "worker/model/logprobs.h"
#include "worker/train/examples.h"

namespace srlm {

TorchLoopModel::TorchLoopModel(LlamaModel model, std::shared_ptr<const TokenizerTextEncoder> encoder,
                               int64_t context, int64_t max_batch)
    : model_(std::move(model)),
      encoder_(std::move(encoder)),
      context_(LimitsForModel(context, model_->config.context_length(), 0).max_seq_len),
      generator_(max_batch) {
  model_->eval();  // sampling and reference scores: no dropout
  absl::StatusOr<TokenIds> suffix = encoder_->EncodeResponse("");
  response_suffix_tokens_ = suffix.ok() ? static_cast<int64_t>(suffix->size()) : 0;
}

absl::StatusOr<std::vector<GeneratedText>> TorchLoopModel::Generate(const std::vector<std::string>& prompts,
                                                                   PromptFormat format, const SamplingConfig& sampling,
                                                                   const std::vector<uint64_t>& seeds) {
  if (seeds.size() != prompts.size()) {
    return absl::InvalidArgumentError(absl::StrCat(seeds.size(), " seeds for ", prompts.size(), " prompts"));
  }
  // Continuations end where a response's end-of-turn token still fits the context.
  const int64_t max_total = context_ - response_suffix_tokens_;
  std::vector<GeneratedText> out(prompts.size());
  std::vector<std::vector<int32_t>> ids;  // of the prompts that leave room, in order
  std::vector<size_t> fitting;
  size_t longest_refused = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    SRLM_ASSIGN_OR_RETURN(std::vector<int32_t> prompt_ids, format == PromptFormat::kChat
                                                               ? encoder_->EncodePrompt(prompts[i])
                                                               : encoder_->EncodeRawPrompt(prompts[i]));
    if (static_cast<int64_t>(prompt_ids.size()) >= max_total) {
      out[i].finish_reason = "context";
      longest_refused = std::max(longest_refused, prompt_ids.size());
      continue;
    }
    fitting.push_back(i);
    ids.push_back(std::move(prompt_ids));
  }
  if (fitting.size() < prompts.size()) {
    SRLM_LOG(WARNING) << prompts.size() - fitting.size() << " of " << prompts.size()
                      << " prompts leave no room in the model's context of " << context_ << " tokens (the longest has "
                      << longest_refused << "): nothing is generated for them (finish_reason \"context\")";
  }
  SamplingOptions options;
  options.temperature = sampling.temperature;
  options.top_p = sampling.top_p;
  options.top_k = sampling.top_k;
  options.stop = sampling.stop;
  options.max_new_tokens = sampling.max_new_tokens;
  options.max_total_tokens = max_total;
  options.extra_eos_ids = ChatStopTokenIds(encoder_->tokenizer(), encoder_->chat_template());
  std::vector<uint64_t> fitting_seeds;
  for (size_t i : fitting) fitting_seeds.push_back(seeds[i]);
  SRLM_ASSIGN_OR_RETURN(std::vector<Generation> generations,
                        generator_.Generate(model_, encoder_->tokenizer(), ids, options, fitting_seeds));
  for (size_t k = 0; k < fitting.size(); ++k) {
    Generation& g = generations[k];
    out[fitting[k]] = {std::move(g.text), static_cast<int64_t>(g.tokens.size()), g.finish_reason};
  }
  return out;
}

absl::StatusOr<std::vector<ScoredResponse>> TorchLoopModel::ScoreResponses(const std::string& user_message,
                                                                           const std::vector<std::string>& responses) {
  if (responses.empty()) return std::vector<ScoredResponse>{};
  SRLM_ASSIGN_OR_RETURN(TokenIds prompt_ids, encoder_->EncodePrompt(user_message));
  if (prompt_ids.empty()) return absl::InvalidArgumentError("empty prompt: nothing to condition a response on");
  std::vector<ScoredResponse> out(responses.size());
  std::vector<TokenIds> sequences;  // of the responses that fit, in order
  std::vector<size_t> fitting;
  int64_t T = 0;
  for (size_t i = 0; i < responses.size(); ++i) {
    SRLM_ASSIGN_OR_RETURN(TokenIds response_ids, encoder_->EncodeResponse(responses[i]));
    out[i].num_tokens = static_cast<int64_t>(response_ids.size());
    if (static_cast<int64_t>(prompt_ids.size() + response_ids.size()) > context_) {
      out[i].fits_context = false;
      continue;
    }
    TokenIds seq = prompt_ids;
    seq.insert(seq.end(), response_ids.begin(), response_ids.end());
    T = std::max<int64_t>(T, seq.size());
    fitting.push_back(i);
    sequences.push_back(std::move(seq));
  }
  if (sequences.empty()) return out;
  const int64_t B = static_cast<int64_t>(sequences.size());
  const int64_t P = static_cast<int64_t>(prompt_ids.size());
  try {
    c10::InferenceMode inference;
    auto ids = torch::zeros({B, T}, torch::kInt64);
    auto attention = torch::zeros({B, T}, torch::kInt64);
    auto response_mask = torch::zeros({B, T}, torch::kInt64);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t n = static_cast<int64_t>(sequences[b].size());
      ids[b].narrow(0, 0, n).copy_(torch::tensor(std::vector<int64_t>(sequences[b].begin(), sequences[b].end())));
      attention[b].narrow(0, 0, n).fill_(1);
      response_mask[b].narrow(0, P, n - P).fill_(1);
    }
    const torch::Device device = model_->device();
    auto sums = SequenceLogprobs(model_, ids.to(device), attention.to(device), response_mask.to(device))
                    .to(torch::kCPU)
                    .to(torch::kFloat64);
    for (int64_t b = 0; b < B; ++b) out[fitting[b]].logprob = sums[b].item<double>();
    return out;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("reference log-probabilities: ", e.what_without_backtrace()));
  }
}

}  // namespace srlm
