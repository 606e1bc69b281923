// Implementation of worker/run/torch_loop_model.h.
#include "worker/run/torch_loop_model.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/tokenizer/chat_template.h"
#include "worker/model/generator.h"
#include "worker/model/logprobs.h"

namespace srlm {

TorchLoopModel::TorchLoopModel(LlamaModel model, std::shared_ptr<const TokenizerTextEncoder> encoder,
                               int64_t max_batch)
    : model_(std::move(model)), encoder_(std::move(encoder)), max_batch_(std::max<int64_t>(1, max_batch)) {
  model_->eval();  // sampling and reference scores: no dropout
}

absl::StatusOr<std::vector<GeneratedText>> TorchLoopModel::Generate(const std::vector<std::string>& prompts,
                                                                   const SamplingConfig& sampling,
                                                                   const std::vector<uint64_t>& seeds) {
  if (seeds.size() != prompts.size()) {
    return absl::InvalidArgumentError(absl::StrCat(seeds.size(), " seeds for ", prompts.size(), " prompts"));
  }
  const int64_t context = model_->config.max_position_embeddings;
  std::vector<std::vector<int32_t>> ids(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    SRLM_ASSIGN_OR_RETURN(ids[i], encoder_->EncodeFormattedPrompt(prompts[i]));
    if (static_cast<int64_t>(ids[i].size()) >= context) {
      return absl::InvalidArgumentError(absl::StrCat("a prompt of ", ids[i].size(),
                                                     " tokens leaves no room in the model's context of ", context,
                                                     " (shorten it, or use fewer self-instruct shots)"));
    }
  }
  SamplingOptions options;
  options.temperature = sampling.temperature;
  options.top_p = sampling.top_p;
  options.top_k = sampling.top_k;
  options.stop = sampling.stop;
  options.extra_eos_ids = ChatStopTokenIds(encoder_->tokenizer(), encoder_->chat_template());

  std::vector<GeneratedText> out;
  out.reserve(prompts.size());
  for (size_t begin = 0; begin < prompts.size(); begin += max_batch_) {
    const size_t end = std::min(prompts.size(), begin + static_cast<size_t>(max_batch_));
    std::vector<std::vector<int32_t>> batch(ids.begin() + begin, ids.begin() + end);
    std::vector<uint64_t> batch_seeds(seeds.begin() + begin, seeds.begin() + end);
    int64_t longest = 0;
    for (const auto& p : batch) longest = std::max<int64_t>(longest, p.size());
    // Never decode past the model's context: the room left bounds max_new_tokens.
    options.max_new_tokens = std::min<int64_t>(sampling.max_new_tokens, context - longest);
    SRLM_ASSIGN_OR_RETURN(std::vector<Generation> generations,
                          srlm::Generate(model_, encoder_->tokenizer(), batch, options, batch_seeds));
    for (Generation& g : generations) {
      out.push_back({std::move(g.text), static_cast<int64_t>(g.tokens.size()), g.finish_reason});
    }
  }
  return out;
}

absl::StatusOr<std::vector<ScoredResponse>> TorchLoopModel::ScoreResponses(const std::string& prompt,
                                                                           const std::vector<std::string>& responses) {
  if (responses.empty()) return std::vector<ScoredResponse>{};
  SRLM_ASSIGN_OR_RETURN(TokenIds prompt_ids, encoder_->EncodeFormattedPrompt(prompt));
  if (prompt_ids.empty()) return absl::InvalidArgumentError("empty prompt: nothing to condition a response on");
  std::vector<TokenIds> sequences;
  std::vector<int64_t> response_lengths;
  int64_t T = 0;
  for (const std::string& r : responses) {
    SRLM_ASSIGN_OR_RETURN(TokenIds response_ids, encoder_->EncodeResponse(r));
    TokenIds seq = prompt_ids;
    seq.insert(seq.end(), response_ids.begin(), response_ids.end());
    if (static_cast<int64_t>(seq.size()) > model_->config.max_position_embeddings) {
      return absl::InvalidArgumentError(absl::StrCat("prompt + response is ", seq.size(),
                                                     " tokens, over the model's context of ",
                                                     model_->config.max_position_embeddings));
    }
    T = std::max<int64_t>(T, seq.size());
    response_lengths.push_back(static_cast<int64_t>(response_ids.size()));
    sequences.push_back(std::move(seq));
  }
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
    std::vector<ScoredResponse> out;
    for (int64_t b = 0; b < B; ++b) out.push_back({sums[b].item<double>(), response_lengths[b]});
    return out;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("reference log-probabilities: ", e.what_without_backtrace()));
  }
}

}  // namespace srlm
