#include "worker/model/logprobs.h"

namespace srlm {

torch::Tensor TokenLogprobs(LlamaModel& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  const int64_t T = input_ids.size(1);
  auto logits = model->forward(input_ids, attention_mask).narrow(1, 0, T - 1);  // (B,T-1,V) float32
  auto targets = input_ids.narrow(1, 1, T - 1).unsqueeze(-1);
  // log_softmax gathered at the target: logit[target] - logsumexp(logits).
  return logits.gather(-1, targets).squeeze(-1) - torch::logsumexp(logits, -1);
}

torch::Tensor SequenceLogprobs(LlamaModel& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                               const torch::Tensor& response_mask) {
  const int64_t T = input_ids.size(1);
  auto token_logprobs = TokenLogprobs(model, input_ids, attention_mask);
  auto mask = response_mask.narrow(1, 1, T - 1).to(torch::kFloat32);
  if (attention_mask.defined()) mask = mask * attention_mask.narrow(1, 1, T - 1).to(torch::kFloat32);
  return (token_logprobs * mask).sum(1);
}

}  // namespace srlm
